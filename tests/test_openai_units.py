"""In-process tests of the OpenAI Images routes (api/openai/): the field mapping onto renderq's
run, and OpenAI's error envelope and status codes on every way a request can fail. No worker
runs here, so a run never ends: the routes answer their timeout (a tiny wait bound), which
names the run the request created."""

from __future__ import annotations

import base64
import io
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.openai.errors import envelope
from api.openai.fields import GenerationFields
from api.openai.results import answer
from storage.records import RunRecord, RunStatus, StoredImage
from tests.images import encode, noise
from tests.inprocess import inprocess_app


@pytest.fixture
def openai_app(tmp_path):
    app, services, key = inprocess_app(str(tmp_path), openai_wait_seconds=0.1, default_model="tiny/model")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, services


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


def _created_run(services, response) -> RunRecord:
    error = _error(response, 504)
    assert error["code"] == "timeout" and response.headers["x-should-retry"] == "false"
    record = services.runs.get(error["run_id"])
    assert record is not None and f"/v1/generations/{record.run_id}" in error["message"]
    return record


def test_generation_fields_map_onto_a_text_to_image_run(openai_app):
    client, services = openai_app
    response = client.post("/v1/images/generations", json={
        "model": "default", "prompt": "a red fox", "n": 2, "size": "64x96", "quality": "hd", "response_format": "b64_json",
        "style": "vivid", "user": "u1", "seed": 7, "num_inference_steps": 2, "negative_prompt": "blur", "guidance_scale": 3,
    })
    record = _created_run(services, response)
    request = record.request
    assert record.operation == "text-to-image" and record.model_id == "default"
    assert (request["width"], request["height"], request["num_images"]) == (64, 96, 2)
    assert (request["seed"], request["num_inference_steps"], request["negative_prompt"], request["guidance_scale"]) == (7, 2, "blur", 3)


@pytest.mark.parametrize("quality, steps", [("low", 15), ("medium", 25), ("standard", 25), ("high", 40), ("hd", 40), ("auto", 25)])
def test_quality_words_map_to_the_tiers(openai_app, quality, steps):
    client, services = openai_app
    record = _created_run(services, client.post("/v1/images/generations", json={"prompt": "x", "quality": quality, "size": "64x64"}))
    assert record.request["num_inference_steps"] == steps


def test_the_open_webui_request_is_taken(openai_app):
    client, services = openai_app
    body = {"model": "default", "prompt": "a lighthouse", "n": 1, "size": "64x64", "response_format": "b64_json"}
    record = _created_run(services, client.post("/v1/images/generations", json=body))
    assert record.request["num_images"] == 1


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_an_edit_becomes_an_inpaint_of_the_masks_transparent_pixels(openai_app):
    client, services = openai_app
    mask = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    mask.paste((10, 20, 30, 0), (0, 0, 32, 64))  # transparent, whatever its colour: edited
    response = client.post("/v1/images/edits", data={"prompt": "a cat", "num_inference_steps": "2", "n": "2"},
                           files=[("image[]", ("a.png", encode(noise(64, 64)), "image/png")), ("mask", ("m.png", _png(mask), "image/png"))])
    record = _created_run(services, response)
    assert record.operation == "inpaint" and record.request["num_images"] == 2
    stored = Image.open(io.BytesIO(services.assets.read(services.assets.get(record.request["mask_asset_id"]))))
    assert stored.getpixel((0, 0)) == 255 and stored.getpixel((40, 0)) == 0


def test_an_edit_whose_mask_selects_nothing_is_refused(openai_app):
    client, _ = openai_app
    opaque = _png(Image.new("RGBA", (64, 64), (0, 0, 0, 255)))
    response = client.post("/v1/images/edits", data={"prompt": "a cat"}, files={"image": ("a.png", opaque, "image/png")})
    assert _error(response, 400)["code"] == "invalid_mask"


def test_a_variation_becomes_a_variations_run_of_one_image(openai_app):
    client, services = openai_app
    response = client.post("/v1/images/variations", data={"size": "64x64"}, files={"image": ("a.png", encode(noise(64, 64)), "image/png")})
    record = _created_run(services, response)
    assert record.operation == "variations" and record.request["num_images"] == 1 and record.request["width"] == 64


@pytest.mark.parametrize("body, status, param, code", [
    ({"prompt": "x", "model": "dall-e-3"}, 404, None, "model_not_found"),
    ({"prompt": "x", "size": "big"}, 400, "size", "invalid_value"),
    ({"prompt": "x", "n": 5}, 400, "n", "invalid_value"),
    ({"prompt": "x", "stream": True, "partial_images": 4}, 400, "partial_images", "invalid_value"),
    # No background-removal model here (the catalog has none): transparent is refused.
    ({"prompt": "x", "background": "transparent"}, 400, "background", "unsupported_value"),
    ({"prompt": "x", "background": "transparent", "output_format": "jpeg"}, 400, "output_format", "invalid_value"),
    ({"prompt": "x", "frobnicate": 1}, 400, "frobnicate", "unknown_parameter"),
    ({"prompt": "x", "response_format": "jpg"}, 400, "response_format", "invalid_value"),
    ({}, 400, "prompt", "invalid_value"),
])
def test_refusals_are_openai_errors(openai_app, body, status, param, code):
    client, _ = openai_app
    error = _error(client.post("/v1/images/generations", json=body), status)
    assert (error["param"], error["code"]) == (param, code), error
    assert error["type"] == "invalid_request_error"


def test_auth_body_and_route_errors_are_openai_errors(openai_app):
    client, _ = openai_app
    assert _error(client.post("/v1/images/generations", json={"prompt": "x"}, headers={"Authorization": ""}), 401)["code"] == "invalid_api_key"
    assert _error(client.post("/v1/images/generations", json={"prompt": "x"}, headers={"Authorization": "Bearer nope"}), 401)["type"] == "invalid_request_error"
    assert _error(client.post("/v1/images/generations", content=b"{", headers={"content-type": "application/json"}), 400)
    assert _error(client.post("/v1/images/generations", content=b"x", headers={"content-type": "text/csv"}), 415)
    # The native routes keep their problem documents.
    assert client.post("/v1/generations", json={}).headers["content-type"] == "application/problem+json"


def test_envelope_of_a_problem_document():
    status, body = envelope({"type": "/problems/insufficient-credits", "status": 402, "detail": "short"})
    assert status == 429 and body["error"] == {"message": "short", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    status, body = envelope({"type": "/problems/validation-error", "status": 422, "detail": "d", "errors": [{"field": "num_images"}]})
    assert status == 400 and body["error"]["param"] == "n"


@pytest.mark.parametrize("response_format, output_format", [("url", "png"), ("b64_json", "png"), ("b64_json", "jpeg"), ("url", "webp")])
def test_a_completed_run_answers_in_openais_shape(openai_app, response_format, output_format):
    _, services = openai_app
    services.images.put("r1/0.png", encode(noise(64, 64)), "image/png")
    now = time.time()
    record = RunRecord(run_id="r1", operation="text-to-image", request={}, created_at=now, expires_at=now + 3600,
                       status=RunStatus.completed, images=[StoredImage(key="r1/0.png", width=64, height=64, seed=1)])
    fields = GenerationFields(prompt="x", response_format=response_format, output_format=output_format, output_compression=80)
    body = answer(services, record, fields)
    assert body["created"] == int(now) and body["size"] == "64x64" and body["output_format"] == output_format
    [item] = body["data"]
    if response_format == "b64_json":
        assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).format == output_format.upper()
    else:
        assert item["url"] and (output_format == "png" or f"0.{output_format}" in item["url"])


def test_openai_routes_are_tagged_in_openapi(openai_app):
    client, _ = openai_app
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
        assert paths[path]["post"]["tags"] == ["openai"]


def test_streaming_is_refused_on_edits_and_variations(openai_app):
    client, _ = openai_app
    response = client.post("/v1/images/variations", data={"stream": "true"}, files={"image": ("a.png", encode(noise(64, 64)), "image/png")})
    error = _error(response, 400)
    assert (error["param"], error["code"]) == ("stream", "unsupported_value") and "generations only" in error["message"]


def test_transparent_is_refused_on_edits_and_natively_without_a_background_remover(openai_app):
    client, _ = openai_app
    image = encode(noise(64, 64, mode="RGBA"))
    error = _error(client.post("/v1/images/edits", data={"prompt": "a cat", "background": "transparent"},
                               files={"image": ("a.png", image, "image/png")}), 400)
    assert (error["param"], error["code"]) == ("background", "unsupported_value") and "generations" in error["message"]
    # The native text-to-image field: a problem naming what is missing.
    response = client.post("/v1/generations", json={"prompt": "x", "background": "transparent"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "background"
    assert "background-removal" in response.json()["detail"]
    assert client.post("/v1/generations", json={"prompt": "x", "background": "green"}).status_code == 422
