"""Live previews end to end on the session stack (its worker previews every 2 steps): the SSE
`preview` events, `preview_url` while running and gone after, the per-request opt-out."""

from __future__ import annotations

import base64
import io
import threading

import httpx
from PIL import Image

from client.client import parse_sse
from tests.conftest import wait_for_run
from tests.test_caller_runs import submit


def stream(stack, run_id: str) -> list[tuple[str, dict]]:
    with httpx.stream("GET", f"{stack.api_url}/v1/generations/{run_id}/events", timeout=60,
                      headers={"Authorization": f"Bearer {stack.key}"}) as response:
        assert response.status_code == 200
        return list(parse_sse(response.iter_lines()))


def test_previews_stream_in_order_before_the_final_event_and_leave_with_the_run(api, stack):
    run = submit(api, width=128, height=96, num_inference_steps=24, seed=11)
    seen: dict = {}

    def poll() -> None:  # the run view while it renders: a preview_url that works without a key
        while "url" not in seen:
            view = api.get(f"/v1/generations/{run['run_id']}").json()
            if view["status"] not in ("queued", "running"):
                return
            if view.get("preview_url"):
                # Signed for RENDERQ_PUBLIC_BASE_URL (unset on the stack): the path, on the stack's API.
                path = view["preview_url"].split("/v1/", 1)[1]
                seen["url"], seen["step"] = f"{stack.api_url}/v1/{path}", view["preview_step"]
                seen["fetched"] = httpx.get(seen["url"])

    poller = threading.Thread(target=poll)
    poller.start()
    events = stream(stack, run["run_id"])
    poller.join()
    kinds = [kind for kind, _ in events]
    previews = [data for kind, data in events if kind == "preview"]
    final = max(i for i, (kind, data) in enumerate(events) if kind == "status" and data["status"] == "completed")
    assert previews, kinds
    ids = [p["id"] for p in previews]
    assert ids == sorted(set(ids)), ids  # strictly increasing
    assert all(i < final for i, kind in enumerate(kinds) if kind == "preview"), kinds  # none after the end
    assert kinds[-1] == "run"
    for p in previews:
        assert p["run_id"] == run["run_id"] and p["step"] % 2 == 0 and 0 < p["step"] < p["total_steps"] == 24
        header, data = p["image"].split(",", 1)
        assert header == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == "JPEG" and image.size == (128, 96) == (p["width"], p["height"])
    assert seen, "the run view never showed a preview_url while running"
    assert seen["fetched"].status_code == 200 and seen["fetched"].headers["content-type"] == "image/jpeg"
    done = wait_for_run(api, run["run_id"])
    assert done["status"] == "completed" and done["preview_url"] is None and done["preview_step"] is None
    assert httpx.get(seen["url"]).status_code == 404  # the preview went with the run's end


def test_a_request_may_turn_previews_off(api, stack):
    run = submit(api, width=64, height=64, num_inference_steps=8, seed=12, previews=False)
    events = stream(stack, run["run_id"])
    assert [kind for kind, _ in events if kind == "preview"] == []
    assert [data["status"] for kind, data in events if kind == "status"][-1] == "completed"
    assert api.get(f"/v1/generations/{run['run_id']}").json()["request"].get("previews") is None  # not a render field


def test_completed_images_have_a_small_signed_webp_thumbnail(api):
    run = wait_for_run(api, submit(api, width=320, height=192, seed=13)["run_id"])
    assert run["status"] == "completed"
    for image in run["images"]:
        got = httpx.get(image["thumbnail_url"])  # presigned S3 (SeaweedFS), as the image's own url
        assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
        with Image.open(io.BytesIO(got.content)) as thumb:
            assert thumb.format == "WEBP" and thumb.size == (256, 154)
        assert len(got.content) < image["bytes"]
        tampered = image["thumbnail_url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert httpx.get(tampered).status_code == 403
        assert "X-Amz-Expires=" in image["thumbnail_url"]  # expires like the image's url


def test_runs_rendered_in_one_model_call_each_get_their_own_previews(api, stack):
    from tests.test_caller_runs import blocker

    blocker(api, steps=20)  # the worker is busy: the two below queue, then render in one call
    runs = [submit(api, width=64, height=64, num_inference_steps=8, seed=60 + i, prompt=f"a kite {i}") for i in range(2)]
    streams: dict = {}
    threads = [threading.Thread(target=lambda run=run: streams.__setitem__(run["run_id"], stream(stack, run["run_id"])))
               for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [wait_for_run(api, run["run_id"]) for run in runs]
    assert [run["timings"]["batch_size"] for run in done] == [2, 2]
    previews = {run_id: [data for kind, data in events if kind == "preview"] for run_id, events in streams.items()}
    assert all(previews.values()) and all(p["run_id"] == run_id for run_id, ps in previews.items() for p in ps)
    first, second = (previews[run["run_id"]][0]["image"] for run in runs)
    assert first != second  # each its own latents
