"""Live previews without processes: decoding latents, which steps preview, the preview store's
rules (numbered, only while running, gone at the end), the run view's fields and the signed
preview URL; and CORS and the Idempotency-Key echo of the API."""

from __future__ import annotations

import io
import json
import time

import fakeredis
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from pipelines.base import Job, StepReport, batch_progress
from pipelines.previews import decode_previews, latents_to_rgb, preview_size
from storage.previews import Preview, preview_key
from storage.records import RunRecord, RunStatus, StoredImage
from storage.run_events import events_channel
from storage.runs import RunStore, run_key
from tests.inprocess import inprocess_app
from worker.previews import encode_preview


class FakePipe:
    class vae:
        class config:
            latent_channels = 4


def test_a_preview_is_at_most_256_px_shaped_like_its_image_and_never_enlarged():
    torch.manual_seed(0)
    big = decode_previews(FakePipe(), torch.randn(3, 4, 64, 96), [0, 2])  # a 512×768 render
    assert [image.size for image in big] == [(256, 171), (256, 171)] and all(i.mode == "RGB" for i in big)
    small = decode_previews(FakePipe(), torch.randn(1, 4, 8, 12), [0])  # 64×96: kept at its size
    assert small[0].size == (96, 64)
    assert decode_previews(FakePipe(), torch.randn(1, 16, 64), [0]) == [None]  # packed latents: none
    assert preview_size(2048, 512) == (256, 64)


def test_the_linear_maps_give_rgb_bytes_for_each_family():
    latents = torch.zeros(1, 4, 2, 2)
    assert latents_to_rgb(latents, "sd").shape == (1, 2, 2, 3)
    assert latents_to_rgb(latents, "sd")[0, 0, 0].tolist() == [128, 128, 128]  # zero latents: mid grey
    assert latents_to_rgb(latents, "sdxl")[0, 0, 0].tolist() != [128, 128, 128]  # SDXL's bias
    other = latents_to_rgb(torch.randn(2, 16, 3, 5), "other")  # any channel count: stretched to its range
    assert other.shape == (2, 3, 5, 3) and other.dtype == torch.uint8 and other.max() == 255


def test_a_preview_encodes_as_a_small_jpeg():
    data = encode_preview(Image.new("RGB", (256, 171), (10, 200, 30)))
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (256, 171)
    assert len(data) < 20_000


def test_previews_come_every_n_steps_never_at_the_last_and_each_batched_job_gets_its_own_row():
    report = StepReport(lambda step, total: True, lambda *a: None, every=2)
    assert [step for step in range(1, 7) if report.preview_rows(step, 6)] == [2, 4]
    assert StepReport(lambda step, total: True).preview_rows(2, 6) == []  # no preview callback: none

    class Request:
        def __init__(self, num_images):
            self.num_images = num_images

    got = []
    jobs = [Job(Request(2), on_progress=StepReport(None, lambda s, t, image: got.append(("a", image)), every=1)),
            Job(Request(1), on_progress=lambda s, t: True),  # takes no previews
            Job(Request(3), on_progress=StepReport(None, lambda s, t, image: got.append(("c", image)), every=1))]
    steps = batch_progress(jobs)
    assert steps.preview_rows(1, 5) == [0, 3]  # each job's first image: rows 0 and 2+1
    steps.preview(1, 5, ["A", "C"])
    assert got == [("a", "A"), ("c", "C")]
    jobs[0].stopped = True
    assert steps.preview_rows(2, 5) == [3]


@pytest.fixture
def runs() -> RunStore:
    return RunStore(fakeredis.FakeRedis(decode_responses=True), retention_seconds=3600)


def preview(step: int, run_id: str = "gen_a") -> Preview:
    data = encode_preview(Image.new("RGB", (64, 64)))
    return Preview(run_id=run_id, id=0, step=step, total_steps=10, width=64, height=64, content_type="image/jpeg", data=data)


def test_previews_are_numbered_kept_only_while_running_and_gone_when_the_run_ends(runs):
    runs.create(RunRecord(run_id="gen_a", request={"prompt": "p"}))
    assert runs.previews.publish(preview(2), attempt=1) is None  # queued: not yet
    runs.claim("gen_a", 1, "w1", stale_after=5)
    listener = runs.redis.pubsub()
    listener.subscribe(events_channel("gen_a"))
    assert [runs.previews.publish(preview(step), attempt=1) for step in (2, 4)] == [1, 2]
    assert runs.previews.publish(preview(6), attempt=2) is None  # another delivery's: refused
    kept = runs.previews.get("gen_a")
    assert (kept.id, kept.step, kept.data) == (2, 4, preview(4).data)
    assert 0 < runs.redis.ttl(preview_key("gen_a")) <= 60
    record = runs.get("gen_a")
    assert (record.preview_id, record.preview_step) == (2, 4)
    messages = [listener.get_message(ignore_subscribe_messages=True, timeout=0.05) for _ in range(4)]
    events = [json.loads(m["data"]) for m in messages if m is not None]
    assert [(e["type"], e["id"], e["step"]) for e in events] == [("preview", 1, 2), ("preview", 2, 4)]
    assert events[0]["image"].startswith("data:image/jpeg;base64,")
    runs.complete("gen_a", 1, [StoredImage(key="gen_a/0.png", width=64, height=64, seed=1)], {"total_seconds": 1.0})
    assert runs.previews.get("gen_a") is None and runs.get("gen_a").preview_step is None
    assert runs.previews.publish(preview(8), attempt=1) is None  # ended: nothing after the final event
    assert runs.previews.get("gen_a") is None


@pytest.fixture
def app(tmp_path):
    return inprocess_app(str(tmp_path / "images"), cors_origins=["https://app.example"])


def test_the_run_view_shows_a_signed_preview_url_while_running_and_none_after(app):
    app, services, key = app
    record = services.runs.create(RunRecord(run_id="gen_b", request={"prompt": "p"}, tenant="inprocess"))
    services.runs.claim("gen_b", 1, "w1", stale_after=5)
    services.runs.previews.publish(preview(4, "gen_b"), attempt=1)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        view = client.get("/v1/generations/gen_b").json()
        assert view["preview_step"] == 4 and "/v1/previews/gen_b?id=1&expires=" in view["preview_url"]
        with TestClient(app) as anonymous:  # no key: the signature is the permission
            path = view["preview_url"].split("127.0.0.1:8000")[1]
            got = anonymous.get(path)
            assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
            assert got.content == preview(4, "gen_b").data
            assert anonymous.get(path.replace("signature=", "signature=0")).status_code == 404
            assert anonymous.get(path.replace("gen_b?", "gen_c?")).status_code == 404  # another run's
            expired = path.split("expires=")[0] + f"expires={int(time.time()) - 1}&signature=" + path.split("signature=")[1]
            assert anonymous.get(expired).status_code == 404
            services.runs.complete("gen_b", 1, [], {"total_seconds": 1.0})
            assert anonymous.get(path).status_code == 404  # gone with the run's end
        view = client.get("/v1/generations/gen_b").json()
        assert view["status"] == RunStatus.completed.value and view["preview_url"] is None and view["preview_step"] is None
    assert record.previews is True


def test_cors_answers_preflights_for_allowed_origins_only_and_exposes_the_api_headers(app):
    app, _, key = app
    with TestClient(app) as client:
        preflight = client.options("/v1/generations", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        })
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert {"authorization", "content-type", "idempotency-key"} <= set(
            preflight.headers["access-control-allow-headers"].lower().replace(" ", "").split(","))
        refused = client.options("/v1/generations", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        answer = client.post("/v1/generations", json={"prompt": "a mug", "width": 64, "height": 64},
                             headers={"Origin": "https://app.example", "Authorization": f"Bearer {key}",
                                      "Idempotency-Key": "cors-1"})
        assert answer.status_code == 202 and answer.headers["access-control-allow-origin"] == "https://app.example"
        exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
        sent = {"location", "x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                "idempotency-key"}
        assert sent <= exposed and sent <= {h.lower() for h in answer.headers}  # exposed, and really sent
        assert answer.headers["idempotency-key"] == "cors-1"
        again = client.post("/v1/generations", json={"prompt": "a mug", "width": 64, "height": 64},
                            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "cors-1"})
        assert again.headers["idempotent-replayed"] == "true" and again.headers["idempotency-key"] == "cors-1"
        unauthorized = client.get("/v1/generations", headers={"Origin": "https://app.example"})
        assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/v1/generations", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {key}"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_without_cors_origins_no_cross_origin_access_is_granted(tmp_path):
    app, _, key = inprocess_app(str(tmp_path / "images"))
    with TestClient(app) as client:
        preflight = client.options("/v1/generations", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
        answer = client.get("/v1/generations", headers={"Origin": "https://app.example", "Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_a_thumbnail_is_a_webp_of_at_most_256_px_never_enlarged():
    from storage.image_codec import thumbnail

    for size, expected in (((1024, 512), (256, 128)), ((64, 96), (64, 96)), ((300, 900), (85, 256))):
        with Image.open(io.BytesIO(thumbnail(Image.new("RGB", size, (200, 30, 30))))) as image:
            assert image.format == "WEBP" and image.size == expected
    with Image.open(io.BytesIO(thumbnail(Image.new("RGBA", (512, 512), (0, 0, 0, 0))))) as image:
        assert image.mode == "RGBA"  # a cut-out keeps its transparency


def test_thumbnail_urls_on_local_storage_are_signed_expire_and_need_no_key(app):
    from storage.image_codec import thumbnail

    app, services, key = app
    services.images.put("gen_t/0.png", b"png", "image/png")
    services.images.put("gen_t/0.thumb.webp", thumbnail(Image.new("RGB", (512, 512))), "image/webp")
    image = StoredImage(key="gen_t/0.png", width=512, height=512, seed=1, thumbnail_key="gen_t/0.thumb.webp")
    services.runs.create(RunRecord(run_id="gen_t", request={"prompt": "p"}, tenant="inprocess"))
    services.runs.claim("gen_t", 1, "w1", stale_after=5)
    services.runs.complete("gen_t", 1, [image], {"total_seconds": 1.0})
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        [view] = client.get("/v1/generations/gen_t").json()["images"]
    assert "thumbnail_key" not in view and "/v1/files/gen_t/0.thumb.webp?expires=" in view["thumbnail_url"]
    path = view["thumbnail_url"].split("127.0.0.1:8000")[1]
    with TestClient(app) as anonymous:
        got = anonymous.get(path)
        assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
        with Image.open(io.BytesIO(got.content)) as thumb:
            assert thumb.size == (256, 256)
        assert anonymous.get(path.replace("signature=", "signature=0")).status_code == 404
    expires = int(path.split("expires=")[1].split("&")[0])
    signature = path.split("signature=")[1]
    assert services.images.verify("gen_t/0.thumb.webp", expires, signature)
    assert not services.images.verify("gen_t/0.thumb.webp", expires, signature, now=expires)  # expired at its second
    assert not services.images.verify("gen_t/0.png", expires, signature)  # not the image's


def test_a_tiny_autoencoder_decodes_previews_when_the_catalog_has_one(tmp_path):
    from devkit.tiny_catalog import build_tiny_preview_decoder
    from pipelines.loading import load_preview_decoder
    from storage.models_catalog import ModelCatalog, ModelEntry
    from worker.placement import placement_for
    from core.settings import Settings

    decoder = load_preview_decoder(str(build_tiny_preview_decoder(tmp_path / "taesd")), placement_for(Settings(device="cpu")))
    torch.manual_seed(1)
    latents = torch.randn(2, 4, 40, 24)  # a 320×192 render
    [decoded] = decode_previews(FakePipe(), latents, [1], decoder)
    [linear] = decode_previews(FakePipe(), latents, [1])
    assert decoded.size == linear.size == (154, 256) and decoded.mode == "RGB"
    assert decoded.tobytes() != linear.tobytes()  # the model decoded it, not the linear map
    catalog = ModelCatalog([ModelEntry(id="default", kind="base", source="x"),
                            ModelEntry(id="xl", kind="base", source="y"),
                            ModelEntry(id="taesd", kind="preview-decoder", source="z", base="default")])
    assert catalog.companion("preview-decoder", "").id == "taesd" and catalog.companion("preview-decoder", "xl") is None
