"""Hand-written attacks: wrong content types, huge and deeply nested JSON, broken UTF-8,
unicode prompts, negative and enormous numbers, NaN, odd ids and headers (in process, no
worker needed); truncated and corrupt images and decompression bombs through POST /v1/assets;
and one unicode prompt rendered end to end by the real worker."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.inputs import body_limit
from pipelines.png import read_parameters
from core.problems import Problem
from tests.conftest import wait_for_run
from tests.inprocess import inprocess_app

BASE = {"prompt": "x", "width": 64, "height": 64}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app, _, key = inprocess_app(str(tmp_path_factory.mktemp("bad-input")))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def problem(response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = Problem.model_validate(response.json())
    assert body.status == status and (slug is None or body.type == f"/problems/{slug}")
    return response.json()


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/xml", "<run><prompt>x</prompt></run>"),
        ("text/html", "<p>x</p>"),
        ("application/x-www-form-urlencoded", "prompt=x&width=64"),
    ],
)
def test_wrong_content_types_are_415(client, content_type, body):
    problem(client.post("/v1/generations", content=body, headers={"content-type": content_type}), 415, "unsupported-media-type")


def test_text_plain_is_left_to_the_route(client):
    # Batches take JSON Lines as text/plain; a single submit does not, and says so as a problem.
    problem(client.post("/v1/generations", content=json.dumps(BASE), headers={"content-type": "text/plain"}), 422)


@pytest.mark.parametrize(
    "name, body, status",
    [
        ("deep arrays", b"[" * 100_000 + b"]" * 100_000, 400),
        ("deep objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
        ("5000-digit seed", b'{"prompt":"x","width":64,"height":64,"seed":' + b"9" * 5000 + b"}", 400),
        ("invalid utf-8", b'{"prompt":"\xff\xfe"}', 400),
        ("truncated json", b'{"prompt": "x", "wid', 400),
        ("lone surrogate", b'{"prompt":"\\ud800x","width":64,"height":64}', 422),
        ("NaN", b'{"prompt":"x","width":64,"height":64,"guidance_scale":NaN}', 422),
        ("Infinity", b'{"prompt":"x","width":64,"height":64,"guidance_scale":Infinity}', 422),
        ("1e400", b'{"prompt":"x","width":64,"height":64,"guidance_scale":1e400}', 422),
        ("null body", b"null", 422),
        ("array body", b"[{}]", 422),
        ("empty body", b"", 422),
    ],
)
def test_malformed_json_bodies_are_4xx_problems(client, name, body, status):
    problem(client.post("/v1/generations", content=body, headers=JSON), status)


def test_huge_json_is_413_before_parsing(client):
    limit = body_limit(client.app.state.services.settings)
    huge = json.dumps(BASE | {"prompt": "a" * (limit + 1)})
    problem(client.post("/v1/generations", content=huge, headers=JSON), 413, "payload-too-large")
    # Under the body cap, a prompt over 2000 characters is still refused, as a validation error.
    problem(client.post("/v1/generations", json=BASE | {"prompt": "a" * 3_000_000}), 422, "validation-error")


@pytest.mark.parametrize(
    "fields",
    [
        {"width": -64}, {"height": 0}, {"width": 2**63}, {"width": 10**30}, {"width": 64.5}, {"seed": -1},
        {"seed": 2**64}, {"num_images": -3}, {"num_images": 10**9}, {"num_inference_steps": 10**30},
        {"num_inference_steps": 0}, {"guidance_scale": -1e308}, {"guidance_scale": 1e308}, {"prompt": ""},
        {"prompt": "x" * 2001}, {"prompt": 7}, {"width": "sixty-four"}, {"aspect_ratio": "1:0"}, {"aspect_ratio": "16:9", "width": 64},
        {"unknown": 1},
    ],
)
def test_out_of_range_numbers_and_wrong_types_are_422(client, fields):
    body = problem(client.post("/v1/generations", json=BASE | fields), 422, "validation-error")
    assert body["errors"]


@pytest.mark.parametrize(
    "prompt",
    ["🦄" * 2000, "مرحبا بالعالم \u202e reversed", "e\u0301\u0301\u0301 zalgo", "a\u0000b", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \ufeff\u200b"],
)
def test_unicode_prompts_are_accepted_and_echoed(client, prompt):
    response = client.post("/v1/generations", json=BASE | {"prompt": prompt})
    assert response.status_code == 202, response.text
    assert client.get(response.headers["location"]).json()["request"]["prompt"] == prompt


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/v1/generations/" + "a" * 5000, {}),
        ("/v1/generations/%F0%9F%A6%84", {}),
        ("/v1/generations/..%2F..%2Fetc%2Fpasswd", {}),
    ],
)
def test_odd_run_ids_are_4xx_problems(client, path, headers):
    assert 400 <= client.get(path, headers=headers).status_code < 500


def test_odd_headers_are_handled(client):
    problem(client.post("/v1/generations", json=BASE, headers={"Idempotency-Key": "k" * 300}), 422, "validation-error")
    problem(client.get("/v1/generations/gen_x", headers={"Authorization": "Bearer " + "x" * 10_000}), 401, "unauthorized")
    assert client.post("/v1/generations", content=json.dumps(BASE), headers=JSON | {"content-length": "nonsense"}).status_code < 500


# --- images, through POST /v1/assets (the codec every image input goes through) ----------

def _png(width: int, height: int) -> bytes:
    """Noise, so that the file is big enough to cut in half."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(0).randbytes(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes that say width × height: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def upload(client, data: bytes, content_type: str = "image/png"):
    return client.post("/v1/assets", content=data, headers={"content-type": content_type})


def test_a_valid_image_is_taken(client):
    response = upload(client, _png(64, 48))
    assert response.status_code == 201, response.text
    assert (response.json()["width"], response.json()["height"]) == (64, 48)


def test_decompression_bombs_are_413_without_decoding(client):
    problem(upload(client, _png_claiming(5000, 5000)), 413)  # over our pixel limit, under Pillow's
    problem(upload(client, _png_claiming(100_000, 100_000)), 413)  # over Pillow's own
    # The same bomb as base64 in JSON, and as a multipart file of an operation.
    problem(client.post("/v1/assets", json={"image": base64.b64encode(_png_claiming(5000, 5000)).decode()}), 413)
    problem(client.post("/v1/image-to-image", data={"prompt": "x"}, files={"image": ("bomb.png", _png_claiming(5000, 5000), "image/png")}), 413)


@pytest.mark.parametrize(
    "name, data",
    [
        ("truncated", _png(256, 256)[: len(_png(256, 256)) // 2]),
        ("header fine, data short", _png_claiming(1024, 1024)),
        ("corrupt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        ("not an image", b"hello, I am text"),
    ],
)
def test_truncated_and_corrupt_images_are_4xx_problems(client, name, data):
    response = upload(client, data)
    assert response.status_code in (400, 415, 422), (name, response.text)
    problem(response, response.status_code)


def test_other_image_formats_are_415(client):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "BMP")
    problem(upload(client, buffer.getvalue(), "application/octet-stream"), 415, "unsupported-media-type")


def test_assets_are_private_to_their_tenant(client):
    asset_id = upload(client, _png(32, 32)).json()["asset_id"]
    services = client.app.state.services
    _, other_key = services.keys.create("someone-else")
    other = {"Authorization": f"Bearer {other_key}"}
    problem(client.get(f"/v1/assets/{asset_id}", headers=other), 404, "not-found")
    # Nor can another tenant feed it to a run.
    problem(client.post("/v1/upscale", json={"image_asset_id": asset_id, "mode": "fast", "upscale_factor": 2}, headers=other), 422, "unknown-asset")
    assert client.get(f"/v1/assets/{asset_id}").status_code == 200


# --- end to end ---------------------------------------------------------------------------

def test_a_unicode_prompt_renders_end_to_end(api):
    prompt = "🦄 مرحبا e\u0301 a\u0000b"
    response = api.post("/v1/generations", json={"prompt": prompt, "width": 64, "height": 64, "num_inference_steps": 2})
    run = wait_for_run(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    assert read_parameters(httpx.get(run["image_url"]).content)["prompt"] == prompt


def test_a_retry_while_the_first_request_is_in_flight_is_409(client):
    from storage.idempotency import IdempotencyStore, fingerprint

    services = client.app.state.services
    body = json.dumps(BASE).encode()
    # The first request has claimed the key and not answered yet.
    IdempotencyStore(services.runs.redis, 3600).begin("inprocess", "in-flight", fingerprint("POST", "/v1/generations", body))
    response = client.post("/v1/generations", content=body, headers=JSON | {"Idempotency-Key": "in-flight"})
    problem(response, 409, "idempotency-in-progress")
    assert response.headers["retry-after"] == "1"
