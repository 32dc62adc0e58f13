"""Every image operation end to end: API → Celery worker → pipeline → S3, on tiny models."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from PIL import Image

from pipelines.png import read_parameters
from tests.conftest import wait_for_run
from tests.images import data_url, decode, encode, noise

FAST = {"num_inference_steps": 2}


def submit(api: httpx.Client, operation: str, expect: int = 202, files=None, **fields) -> dict:
    if files:
        data = {k: v if isinstance(v, str) else __import__("json").dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in fields.items()}
        response = api.post(f"/v1/{operation}", data=data, files=files)
    else:
        response = api.post(f"/v1/{operation}", json=fields)
    assert response.status_code == expect, response.text
    if expect != 202:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def completed(api: httpx.Client, run: dict) -> dict:
    assert run["status"] == "queued" and run["run_id"].startswith("gen_")
    done = wait_for_run(api, run["run_id"])
    assert done["status"] == "completed", done
    return done


def fetch(image: dict) -> Image.Image:
    response = httpx.get(image["url"])
    assert response.status_code == 200
    return decode(response.content)


def upload(api: httpx.Client, image: Image.Image) -> dict:
    response = api.post("/v1/assets", content=encode(image), headers={"content-type": "image/png"})
    assert response.status_code == 201, response.text
    return response.json()


# --- assets ---------------------------------------------------------------------------------

def test_asset_upload_raw_multipart_and_data_url_then_read_back(api):
    image = noise(72, 64, seed=1)
    raw = upload(api, image)
    assert raw["asset_id"].startswith("ast_") and (raw["width"], raw["height"]) == (72, 64)
    assert raw["content_type"] == "image/png" and raw["source"] == "upload"
    multipart = api.post("/v1/assets", files={"file": ("x.jpg", encode(image, "JPEG"), "image/jpeg")})
    assert multipart.status_code == 201 and multipart.json()["content_type"] == "image/jpeg"
    webp = api.post("/v1/assets", json={"image": "data:image/webp;base64," + base64.b64encode(encode(image, "WEBP")).decode()})
    assert webp.status_code == 201 and webp.json()["content_type"] == "image/webp"
    read = api.get(f"/v1/assets/{raw['asset_id']}").json()
    assert httpx.get(read["url"]).content == encode(image)
    assert read["expires_at"] > read["created_at"]


@pytest.mark.parametrize(
    "body, status, slug",
    [
        (b"not an image at all", 422, "invalid-image"),
        (encode(noise(8, 8), "GIF"), 415, "unsupported-media-type"),
        (encode(noise(64, 64))[:200], 422, "invalid-image"),  # truncated
        (encode(Image.new("L", (5000, 4000))), 413, "payload-too-large"),  # 20 MP in a few KB: a bomb
        (b"\x89PNG" + b"\0" * (10 * 2**20 + 1), 413, "payload-too-large"),
    ],
    ids=["garbage", "gif", "truncated", "decompression-bomb", "over-10MB"],
)
def test_asset_upload_refuses_bad_images(api, body, status, slug):
    response = api.post("/v1/assets", content=body, headers={"content-type": "image/png"})
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"/problems/{slug}"


def test_unknown_asset_is_404(api):
    assert api.get("/v1/assets/ast_" + "0" * 24).status_code == 404


# --- image-to-image and variations ----------------------------------------------------------

def test_image_to_image_from_a_multipart_upload_with_livepeer_fields(api):
    files = {"image": ("in.png", encode(noise(80, 64, seed=2)), "image/png")}
    run = completed(api, submit(api, "image-to-image", files=files, prompt="a mug", strength=0.5, seed=21,
                                num_images_per_prompt=2, loras={"tiny-lora": 0.7}, **FAST))
    assert run["operation"] == "image-to-image" and run["request"]["loras"] == {"tiny-lora": 0.7}
    assert [image["seed"] for image in run["images"]] == [21, 22]
    for image in run["images"]:
        assert fetch(image).size == (80, 64) and image["asset_id"].startswith("ast_")
    assert run["request"]["image_asset_id"].startswith("ast_")  # the upload became an asset


def test_generated_image_feeds_the_next_request(api):
    generated = completed(api, api.post("/v1/generations", json={"prompt": "mug", "width": 64, "height": 64, "seed": 3, **FAST}).json())
    asset_id = generated["images"][0]["asset_id"]
    assert api.get(f"/v1/assets/{asset_id}").json()["source"] == generated["run_id"]
    run = completed(api, submit(api, "image-to-image", prompt="same mug", image_asset_id=asset_id, width=96, height=64, seed=4, **FAST))
    assert fetch(run["images"][0]).size == (96, 64)


def test_variations_have_distinct_seeds_and_images(api):
    run = completed(api, submit(api, "variations", image=data_url(noise(64, 64, seed=5)), seed=100, samples=4, **FAST))
    images = run["images"]
    assert [image["seed"] for image in images] == [100, 101, 102, 103]
    pixels = [np.asarray(fetch(image)).tobytes() for image in images]
    assert len(set(pixels)) == 4


# --- inpaint ------------------------------------------------------------------------------

def test_inpaint_with_a_mask_image_keeps_every_pixel_outside_the_mask(api):
    source = noise(80, 64, seed=6)
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (16, 8, 48, 40))
    run = completed(api, submit(api, "inpaint", prompt="a sloth", image=data_url(source), mask=data_url(mask), seed=5, **FAST))
    out = np.asarray(fetch(run["images"][0]).convert("RGB"))
    inside = np.asarray(mask) > 0
    assert out.shape == (64, 80, 3)
    assert (out[~inside] == np.asarray(source)[~inside]).all()
    assert (out[inside] != np.asarray(source)[inside]).any()
    assert read_parameters(httpx.get(run["images"][0]["url"]).content)["operation"] == "inpaint"


def test_inpaint_with_limewire_mask_colour_and_threshold(api):
    source = np.asarray(noise(64, 64, seed=7).convert("RGBA")).copy()
    source[..., 3] = 255
    source[:, :32, :3] = np.clip(source[:, :32, :3].astype(int) // 8 + 228, 0, 255)  # near white: 228..255
    source[:, 32:, :3] //= 2  # dark right half: never masked
    asset = upload(api, Image.fromarray(source, "RGBA"))
    run = completed(api, submit(api, "inpaint", prompt="sky", image_asset_id=asset["asset_id"], samples=2,
                                mask_color_rgba=[255, 255, 255, 255], mask_color_threshold=10, seed=9, **FAST))
    assert [image["seed"] for image in run["images"]] == [9, 10]
    out = np.asarray(fetch(run["images"][0]).convert("RGB"))
    masked = (np.abs(source.astype(int) - 255) <= 25.5).all(axis=-1)
    assert 0 < masked[:, :32].mean() < 1 and not masked[:, 32:].any()  # 228, 229 are outside 10 %
    assert (out[~masked] == source[..., :3][~masked]).all()
    assert (out[masked] != source[..., :3][masked]).any()


def test_inpaint_multipart_with_the_mask_colour_looked_up_in_the_mask_file(api):
    # LimeWire: with a mask given, mask_color_rgba is applied to the mask, not to the image.
    source = noise(64, 64, seed=14)
    mask = Image.new("RGBA", source.size, (0, 0, 255, 255))
    mask.paste((255, 0, 0, 255), (8, 40, 56, 60))  # red marks the area to repaint
    files = {"image": ("in.png", encode(source), "image/png"), "mask": ("mask.png", encode(mask), "image/png")}
    run = completed(api, submit(api, "inpaint", files=files, prompt="grass", mask_color_rgba=[255, 0, 0, 255], seed=3, **FAST))
    assert run["request"]["mask_asset_id"].startswith("ast_")
    out = np.asarray(fetch(run["images"][0]).convert("RGB"))
    red = np.zeros((64, 64), bool)
    red[40:60, 8:56] = True
    assert (out[~red] == np.asarray(source)[~red]).all() and (out[red] != np.asarray(source)[red]).any()


# --- outpaint -----------------------------------------------------------------------------

def test_outpaint_limewire_direction_extends_and_keeps_the_original(api):
    source = noise(64, 64, seed=8)
    run = completed(api, submit(api, "outpaint", image=data_url(source), direction="UP", crop_side="LEFT", seed=1, **FAST))
    out = np.asarray(fetch(run["images"][0]).convert("RGB"))
    assert out.shape == (96, 64, 3)  # half the height added on top
    assert (out[32:] == np.asarray(source)).all()


def test_outpaint_alwrity_expand_pixels(api):
    source = noise(64, 64, seed=9)
    files = {"image": ("in.png", encode(source), "image/png")}
    run = completed(api, submit(api, "outpaint", files=files, expand_left=16, expand_down=8, prompt="more", seed=2, **FAST))
    out = np.asarray(fetch(run["images"][0]).convert("RGB"))
    assert out.shape == (72, 80, 3)
    assert (out[:64, 16:] == np.asarray(source)).all()


# --- upscale ------------------------------------------------------------------------------

def test_upscale_fast_lanczos_by_factor(api):
    asset = upload(api, noise(64, 48, seed=10))
    run = completed(api, submit(api, "upscale", image_asset_id=asset["asset_id"], upscale_factor=3, mode="fast"))
    assert fetch(run["images"][0]).size == (192, 144)
    assert run["request"]["mode"] == "fast"


def test_upscale_with_the_super_resolution_model_to_a_target_width(api):
    source = noise(64, 48, seed=11, mode="RGBA")
    run = completed(api, submit(api, "upscale", image=data_url(source), target_width=200))
    out = fetch(run["images"][0])
    assert out.size == (200, 150) and out.mode == "RGBA"  # aspect kept, alpha carried through
    assert read_parameters(httpx.get(run["images"][0]["url"]).content)["model"] == "tiny-upscaler"


# --- background removal -------------------------------------------------------------------

def test_remove_background_gives_an_rgba_png_with_the_original_colours(api):
    source = noise(72, 64, seed=12)
    run = completed(api, submit(api, "remove-background", image_base64=data_url(source)))
    out = fetch(run["images"][0])
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (72, 64)
    assert (np.asarray(out)[..., :3] == np.asarray(source)).all()
    alpha = np.asarray(out)[..., 3]
    assert alpha.min() < 255  # the segmentation model made some of it transparent


# --- models and LoRAs ---------------------------------------------------------------------

def test_models_lists_bases_loras_and_tools(api):
    models = {model["id"]: model for model in api.get("/v1/models").json()["models"]}
    assert models["default"]["kind"] == "base"
    assert models["tiny-lora"]["kind"] == "lora" and models["tiny-lora"]["base"] == "default"
    assert models["tiny-upscaler"]["kind"] == "upscaler"
    assert models["tiny-segmenter"]["kind"] == "background-removal"
    assert {"id", "name", "description", "kind", "created_at"} <= set(models["tiny-lora"])


def test_lora_changes_the_image_and_imagineo_lora_weight_matches_livepeer_loras(api):
    body = {"prompt": "mug", "width": 64, "height": 64, "seed": 31, **FAST}
    plain, livepeer, imagineo = (
        completed(api, api.post("/v1/generations", json=body | extra).json())
        for extra in ({}, {"loras": {"tiny-lora": 0.9}}, {"model_id": "tiny-lora", "lora_weight": 0.9})
    )
    assert imagineo["request"]["loras"] == {"tiny-lora": 0.9}
    a, b, c = (np.asarray(fetch(run["images"][0])) for run in (plain, livepeer, imagineo))
    assert (a != b).any() and (b == c).all()


# --- bad inputs: a clear 4xx problem for each operation ------------------------------------

PNG64 = data_url(noise(64, 64, seed=13))


@pytest.mark.parametrize(
    "operation, fields, status, slug",
    [
        ("image-to-image", {"prompt": "x"}, 422, "validation-error"),  # no image
        ("image-to-image", {"prompt": "x", "image": PNG64, "image_asset_id": "ast_" + "1" * 24}, 422, "validation-error"),
        ("image-to-image", {"prompt": "x", "image_asset_id": "ast_" + "1" * 24}, 422, "unknown-asset"),
        ("image-to-image", {"prompt": "x", "image": "%%%not base64"}, 422, "invalid-image"),
        ("image-to-image", {"prompt": "x", "image": PNG64, "strength": 1.5}, 422, "validation-error"),
        ("image-to-image", {"prompt": "x", "image": data_url(noise(32, 64))}, 422, "invalid-image"),  # side < 64
        ("image-to-image", {"prompt": "x", "image": PNG64, "model_id": "no-such-model"}, 422, "unknown-model"),
        ("image-to-image", {"prompt": "x", "image": PNG64, "loras": {"no-such-lora": 1}}, 422, "unknown-model"),
        # a LoRA made for the default base, asked for on another base (broken-model is a listed base)
        ("image-to-image", {"prompt": "x", "image": PNG64, "model_id": "broken-model", "loras": {"tiny-lora": 1}}, 422, "unknown-model"),
        ("image-to-image", {"prompt": "x", "image": PNG64, "model_id": "tiny-upscaler"}, 422, "unknown-model"),
        ("variations", {"image": PNG64, "num_images": 5}, 422, "validation-error"),
        ("inpaint", {"prompt": "x", "image": PNG64, "mask": data_url(noise(64, 72, mode="L"))}, 422, "invalid-image"),
        ("inpaint", {"prompt": "x", "image": PNG64, "mask_color_rgba": [0, 0, 0]}, 422, "validation-error"),
        ("inpaint", {"prompt": "x", "image": PNG64, "mask_color_threshold": 101}, 422, "validation-error"),
        ("outpaint", {"image": PNG64}, 422, "validation-error"),  # no direction, no expand
        ("outpaint", {"image": PNG64, "direction": "UP", "expand_up": 8}, 422, "validation-error"),
        ("outpaint", {"image": PNG64, "direction": "SIDEWAYS"}, 422, "validation-error"),
        ("outpaint", {"image": PNG64, "expand_left": 2000}, 422, "validation-error"),
        ("upscale", {"image": PNG64, "upscale_factor": 5}, 422, "validation-error"),
        ("upscale", {"image": PNG64}, 422, "validation-error"),  # neither factor nor target
        ("upscale", {"image": PNG64, "target_width": 32}, 422, "invalid-image"),  # a downscale
        ("upscale", {"image": data_url(Image.new("RGB", (700, 680))), "upscale_factor": 3}, 422, "invalid-image"),
        ("upscale", {"image": PNG64, "upscale_factor": 2, "model_id": "tiny-lora"}, 422, "unknown-model"),
        ("remove-background", {"image": PNG64, "loras": {"tiny-lora": 1}}, 422, "validation-error"),
        ("remove-background", {}, 422, "validation-error"),
    ],
)
def test_bad_input_is_a_4xx_problem(api, operation, fields, status, slug):
    problem = submit(api, operation, expect=status, **fields)
    assert problem["type"] == f"/problems/{slug}" and problem["status"] == status and problem["detail"]


def test_image_operations_refuse_other_content_types_and_malformed_json(api):
    response = api.post("/v1/inpaint", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and response.json()["type"] == "/problems/unsupported-media-type"
    response = api.post("/v1/inpaint", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["type"] == "/problems/malformed-request"


def test_text_to_image_refuses_unknown_models_at_submit(api):
    response = api.post("/v1/generations", json={"prompt": "x", "model_id": "no-such-org/no-such-model"})
    assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model"
    response = api.post("/v1/generations", json={"prompt": "x", "loras": {"nope": 1.0}})
    assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model"


def test_upscale_mode_auto_uses_the_served_upscaler(api):
    run = completed(api, submit(api, "upscale", image=PNG64, upscale_factor=2))
    assert run["request"]["mode"] == "model" and fetch(run["images"][0]).size == (128, 128)
