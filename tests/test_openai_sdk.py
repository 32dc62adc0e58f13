"""The OpenAI Images API through the real `openai` SDK against a running stack (API + worker):
`OpenAI(base_url=".../v1", api_key=KEY)` unchanged. Tiny renders: 64×64, 2 steps (extra_body).
And a raw upload over the limit, sent by urllib, reads its 413 rather than a reset."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import httpx
import openai
import pytest
from PIL import Image

from devkit.procs import start_api
from tests.images import encode, noise

pytestmark = pytest.mark.integration
TINY = {"num_inference_steps": 2, "seed": 3}


@pytest.fixture
def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.api_url + "/v1", api_key=stack.key, max_retries=0, timeout=120)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_generations_as_urls_and_base64(client, api):
    result = client.images.generate(model="default", prompt="a red fox", n=2, size="64x64", extra_body=TINY)
    assert len(result.data) == 2 and result.created > 0
    for item in result.data:
        assert Image.open(io.BytesIO(httpx.get(item.url).content)).size == (64, 64)
    run = api.get(f"/v1/generations/{result.model_extra['run_id']}").json()  # an ordinary run of the caller
    assert run["status"] == "completed" and run["request"]["num_inference_steps"] == 2
    result = client.images.generate(prompt="a red fox", size="64x64", response_format="b64_json", output_format="jpeg",
                                    extra_body=TINY)
    assert Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).format == "JPEG"


def test_streaming_sends_partial_images_from_the_live_previews_then_the_image(client):
    # The session stack's worker previews every 2 steps: 12 steps make 5 previews, 2 asked for.
    stream = client.images.generate(prompt="a red fox", size="128x64", stream=True, partial_images=2,
                                    extra_body={"num_inference_steps": 12, "seed": 5})
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[-1] == "image_generation.completed" and kinds.count("image_generation.completed") == 1, kinds
    partials = [event for event in events if event.type == "image_generation.partial_image"]
    assert 1 <= len(partials) <= 2 and [p.partial_image_index for p in partials] == list(range(len(partials)))
    for partial in partials:
        with Image.open(io.BytesIO(base64.b64decode(partial.b64_json))) as image:
            assert image.format == "JPEG" and image.size == (128, 64) and partial.output_format == "jpeg"
    with Image.open(io.BytesIO(base64.b64decode(events[-1].b64_json))) as image:
        assert image.format == "PNG" and image.size == (128, 64) and events[-1].size == "128x64"


def test_a_transparent_background_is_cut_out_after_rendering(client, api):
    # The catalog's background remover (the tiny random SegFormer) cuts each image out in the worker.
    result = client.images.generate(prompt="a red fox", size="64x64", background="transparent", response_format="b64_json",
                                    output_format="webp", extra_body=TINY)
    assert result.background == "transparent" and result.output_format == "webp"
    with Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))) as image:
        assert image.format == "WEBP" and image.mode == "RGBA" and image.size == (64, 64)
        assert image.getchannel("A").getextrema()[0] < 255  # some of it is see-through
    run = api.get(f"/v1/generations/{result.model_extra['run_id']}").json()
    assert run["request"]["background"] == "transparent" and run["images"][0]["content_type"] == "image/png"
    stored = Image.open(io.BytesIO(httpx.get(run["images"][0]["url"]).content))
    assert stored.mode == "RGBA"  # the PNG itself carries the alpha
    # Opaque, the same seed renders the same picture, without an alpha channel.
    opaque = client.images.generate(prompt="a red fox", size="64x64", response_format="b64_json", extra_body=TINY)
    with Image.open(io.BytesIO(base64.b64decode(opaque.data[0].b64_json))) as image:
        assert image.mode == "RGB" and opaque.background == "opaque"
        assert image.tobytes() == stored.convert("RGB").tobytes()


def test_the_open_webui_request(stack):
    body = {"model": "default", "prompt": "a lighthouse", "n": 1, "size": "64x64", "response_format": "b64_json", **TINY}
    response = httpx.post(stack.api_url + "/v1/images/generations", json=body,
                          headers={"Authorization": f"Bearer {stack.key}"}, timeout=120)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"]))).size == (64, 64)


def test_an_edit_with_a_mask_repaints_only_the_transparent_pixels(client):
    image = noise(64, 64)
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    result = client.images.edit(image=("a.png", encode(image), "image/png"), mask=("m.png", _png(mask), "image/png"),
                                prompt="a cat", response_format="b64_json", extra_body=TINY)
    edited = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))).convert("RGB")
    original = image.convert("RGB")
    assert edited.crop((32, 0, 64, 64)).tobytes() == original.crop((32, 0, 64, 64)).tobytes()
    assert edited.crop((0, 0, 32, 64)).tobytes() != original.crop((0, 0, 32, 64)).tobytes()


def test_variations(client):
    result = client.images.create_variation(image=("a.png", encode(noise(64, 64)), "image/png"), n=2, size="64x64",
                                            extra_body=TINY)
    assert len(result.data) == 2 and all(item.url for item in result.data)


def test_an_unknown_model_is_openais_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="dall-e-3", prompt="x")
    assert caught.value.code == "model_not_found" and caught.value.status_code == 404


def test_a_bad_key_is_openais_401(stack):
    bad = openai.OpenAI(base_url=stack.api_url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.images.generate(prompt="x")
    assert caught.value.code == "invalid_api_key"


def test_past_the_wait_bound_the_error_names_the_run(stack, api):
    proc, url = start_api(stack.env | {"RENDERQ_OPENAI_WAIT_SECONDS": "0.01"}, stack.workdir)
    try:
        impatient = openai.OpenAI(base_url=url + "/v1", api_key=stack.key, timeout=30)  # default retries: none here
        with pytest.raises(openai.InternalServerError) as caught:
            # 150 steps: the tiny model renders 2 within the bound.
            impatient.images.generate(prompt="x", size="64x64", extra_body={"num_inference_steps": 150})
        error = caught.value.body
        assert caught.value.status_code == 504 and error["code"] == "timeout"
        assert api.get(f"/v1/generations/{error['run_id']}").status_code == 200
        api.post(f"/v1/generations/{error['run_id']}/cancel")
    finally:
        proc.stop()


def test_a_raw_upload_over_the_limit_reads_its_413_with_urllib(stack):
    data = b"\x89PNG" + b"\0" * (11 * 2**20)
    request = urllib.request.Request(stack.api_url + "/v1/assets", data=data, method="POST",
                                     headers={"Content-Type": "image/png", "Authorization": f"Bearer {stack.key}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["type"] == "/problems/payload-too-large"
