"""In-process tests of the pieces behind the image operations: decoding rules, LimeWire mask
colours, outpaint geometry, upscale limits, and the worker's model cache (from_pipe sharing,
LoRA switching, LRU) on the tiny models."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from pipelines.masks import mask_from_color, pad
from pipelines.outpaint.request import OutpaintRequest
from pipelines.request_parts import InputSizeError
from pipelines.upscale.request import UpscaleRequest
from storage.image_codec import ImageRejected, decode_base64, open_image
from tests.images import encode, noise

MB = 2**20


def test_data_url_and_plain_base64_decode_to_the_same_bytes():
    data = encode(noise(4, 4))
    text = base64.b64encode(data).decode()
    assert decode_base64(text, MB) == decode_base64("data:image/png;base64," + text, MB) == data


def test_base64_over_the_size_limit_is_refused_before_decoding():
    with pytest.raises(ImageRejected) as caught:
        decode_base64("A" * (4 * MB), MB)
    assert caught.value.status == 413


def test_pixel_limit_is_checked_from_the_header():
    with pytest.raises(ImageRejected) as caught:
        open_image(encode(Image.new("L", (3000, 3000))), 10 * MB, 4_000_000)
    assert caught.value.status == 413 and "9000000" in caught.value.detail


@pytest.mark.parametrize("value, masked", [(229, False), (230, True), (255, True)])
def test_mask_colour_threshold_is_a_percentage_of_255_per_channel(value, masked):
    # LimeWire: [255,255,255,255] at 10 % masks [230,230,230,230]..[255,255,255,255].
    image = Image.new("RGBA", (2, 1), (value, 255, 255, 255))
    image.putpixel((1, 0), (255, 255, 255, value))
    mask = np.asarray(mask_from_color(image, [255, 255, 255, 255], 10))
    assert (mask > 0).tolist() == [[masked, masked]]


def test_default_mask_colour_picks_fully_transparent_pixels_only():
    image = Image.new("RGBA", (3, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 1))
    image.putpixel((2, 0), (0, 0, 0, 255))
    assert (np.asarray(mask_from_color(image, [0, 0, 0, 0], 0)) > 0).tolist() == [[True, False, False]]


def test_outpaint_directions_and_crop_side():
    size = (1600, 800)
    assert OutpaintRequest(image_asset_id="a", direction="ALL").canvas((64, 64))[0] == (96, 96)
    assert OutpaintRequest(image_asset_id="a", direction="DOWN").canvas((64, 64))[0] == (64, 96)
    # 1600 + 800 = 2400 > 2048: cropping the left side keeps the right edge of the new area.
    (width, height), box = OutpaintRequest(image_asset_id="a", direction="RIGHT", crop_side="LEFT").canvas(size)
    assert (width, height) == (2048, 800) and box == (352, 0, 2400, 800)
    with pytest.raises(InputSizeError):
        OutpaintRequest(image_asset_id="a", direction="RIGHT").canvas(size)
    with pytest.raises(InputSizeError):
        OutpaintRequest(image_asset_id="a", direction="RIGHT", crop_side="TOP").canvas(size)


def test_pad_masks_exactly_the_new_area():
    canvas, mask = pad(noise(4, 4), (0, 0, 7, 5), (2, 1, 1, 0))
    assert canvas.size == (7, 5)
    expected = np.full((5, 7), 255)
    expected[1:5, 2:6] = 0
    assert (np.asarray(mask) == expected).all()


@pytest.mark.parametrize("factor, ok, too_big", [(2, (1024, 1024), (1025, 1024)), (3, (680, 680), (681, 680)), (4, (1256, 1256), (1257, 1256))])
def test_upscale_input_limits_follow_limewire(factor, ok, too_big):
    request = UpscaleRequest(image_asset_id="a", upscale_factor=factor)
    request.check_input_sizes({"image": ok})
    with pytest.raises(InputSizeError):
        request.check_input_sizes({"image": too_big})


# --- the worker's model cache on the tiny model --------------------------------------------

@pytest.fixture(scope="module")
def catalog_dir(tiny_model):
    from tests.conftest import tiny_catalog_for
    from pathlib import Path

    return Path(tiny_catalog_for(tiny_model)).parent


def _cache(max_bytes: int = 2**30):
    from pipelines.device import choose_placement
    from pipelines.loading import load_text_to_image
    from worker.model_cache import ModelCache

    placement = choose_placement("cpu")
    return ModelCache(lambda source: load_text_to_image(source, placement), max_bytes)


def test_operations_on_one_base_share_its_components_and_load_it_once(tiny_model):
    cache = _cache()
    text = cache.pipe(tiny_model, "text-to-image")
    image = cache.pipe(tiny_model, "image-to-image")
    inpaint = cache.pipe(tiny_model, "inpaint")
    assert text.unet is image.unet is inpaint.unet and text.vae is inpaint.vae
    assert cache.pipe(tiny_model, "image-to-image") is image
    assert cache.stats.loads == 1 and cache.stats.derived == 2


def test_loras_switch_without_reloading_the_base(tiny_model, catalog_dir):
    from pipelines.registry import OPERATIONS, pipeline_class
    from pipelines.text_to_image.request import TextToImageRequest

    cache = _cache()
    request = TextToImageRequest(prompt="mug", width=64, height=64, num_inference_steps=2, seed=1)

    def render(loras):
        pipe = cache.pipe(tiny_model, "text-to-image", {k: (str(catalog_dir / k), w) for k, w in loras.items()})
        return np.asarray(pipeline_class(OPERATIONS["text-to-image"])(pipe, "tiny").render(request)[0].image)

    plain, with_a, with_b, plain_again, with_a_again = (
        render(loras) for loras in ({}, {"tiny-lora": 1.0}, {"tiny-lora-b": 1.0}, {}, {"tiny-lora": 1.0})
    )
    assert (plain != with_a).any() and (with_a != with_b).any()
    assert (plain == plain_again).all() and (with_a == with_a_again).all()
    assert cache.stats.loads == 1 and cache.stats.lora_loads == 2


def test_lru_evicts_the_least_recently_used_base_to_stay_within_memory(tiny_model, tmp_path):
    from devkit.tiny_model import build_tiny_model
    from worker.model_cache import pipeline_bytes

    other = str(build_tiny_model(tmp_path / "other", seed=1))
    size = pipeline_bytes(_cache().pipe(tiny_model, "text-to-image"))
    cache = _cache(max_bytes=int(size * 1.5))  # room for one base model
    cache.pipe(tiny_model, "text-to-image")
    cache.pipe(other, "text-to-image")
    assert list(cache.entries) == [other] and cache.stats.evictions == 1
    roomy = _cache(max_bytes=size * 3)
    roomy.pipe(tiny_model, "text-to-image")
    roomy.pipe(other, "text-to-image")
    roomy.pipe(tiny_model, "inpaint")
    assert list(roomy.entries) == [other, tiny_model] and roomy.stats.loads == 2


def test_controlnets_and_the_ip_adapter_count_in_the_byte_budget_and_leave_with_their_base(
        tiny_model, catalog_dir, tmp_path):
    from pipelines.device import choose_placement
    from pipelines.loading import load_controlnet, load_text_to_image
    from worker.model_cache import ModelCache, module_bytes

    placement = choose_placement("cpu")
    cache = ModelCache(lambda source: load_text_to_image(source, placement), 2**30,
                       lambda source: load_controlnet(source, placement))
    cache.pipe(tiny_model, "text-to-image")
    base_bytes = cache.held_bytes()
    canny = str(catalog_dir / "tiny-controlnet-canny")
    ip_adapter = (str(catalog_dir / "tiny-ip-adapter"), {"weight_name": "ip-adapter.safetensors"})
    pipe = cache.pipe(tiny_model, "image-to-image", controlnet=canny, ip_adapter=ip_adapter)
    adapter = cache.entries[tiny_model].ip_adapter
    assert adapter.bytes > module_bytes(pipe.image_encoder) > 0  # the encoder and the adapter's own weights
    assert cache.held_bytes() == base_bytes + module_bytes(pipe.controlnet) + adapter.bytes
    # A second base that fits only without the first: the first goes, and its ControlNet with it.
    other = tmp_path / "other"
    other.symlink_to(tiny_model)
    cache.max_bytes = cache.held_bytes() + 1
    cache.pipe(str(other), "text-to-image")
    assert list(cache.entries) == [str(other)] and cache.controlnets == {} and cache.held_bytes() == base_bytes


# --- the API's asset handling with in-process services (fakeredis, local disk) -------------

@pytest.fixture
def local_client(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    services = unit_services(tmp_path)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client, services


def test_local_backend_serves_an_uploaded_jpeg_as_jpeg(local_client):
    client, _ = local_client
    asset = client.post("/v1/assets", files={"file": ("a.jpg", encode(noise(16, 16), "JPEG"), "image/jpeg")}).json()
    url = asset["url"].replace("http://testserver", "")
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"


def test_unreachable_image_storage_is_a_503_problem(local_client):
    client, services = local_client

    def broken_put(*_args, **_kwargs):
        raise ConnectionError("storage down")

    services.images.put = broken_put
    response = client.post("/v1/assets", content=encode(noise(16, 16)), headers={"content-type": "image/png"})
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    image = "data:image/png;base64," + base64.b64encode(encode(noise(16, 16))).decode()
    response = client.post("/v1/upscale", json={"image": image, "upscale_factor": 2, "mode": "fast"})
    assert response.status_code == 503 and response.json()["type"] == "/problems/service-unavailable"


def test_super_resolution_in_tiles_gives_the_full_image(catalog_dir):
    from pipelines.device import choose_placement
    from pipelines.upscale.pipeline import super_resolve
    from pipelines.loading import load_upscaler

    model = load_upscaler(str(catalog_dir / "tiny-upscaler"), choose_placement("cpu"))
    image = noise(70, 45, seed=3)
    whole = super_resolve(model, image)
    tiled = super_resolve(model, image, tile=32, margin=8)
    assert whole.size == tiled.size == (140, 90)
    # Away from tile seams the context is the same, so the pixels are too (within rounding).
    assert np.abs(np.asarray(whole, int)[:40, :40] - np.asarray(tiled, int)[:40, :40]).max() <= 1


def test_without_an_upscaler_auto_mode_is_fast_and_background_removal_is_refused(local_client):
    client, _ = local_client
    image = "data:image/png;base64," + base64.b64encode(encode(noise(16, 16))).decode()
    response = client.post("/v1/upscale", json={"image": image, "upscale_factor": 2})
    assert response.status_code == 202 and response.json()["request"]["mode"] == "fast"
    response = client.post("/v1/upscale", json={"image": image, "upscale_factor": 2, "mode": "model"})
    assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model"
    response = client.post("/v1/remove-background", json={"image": image})
    assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model"


def test_inpaint_and_outpaint_keep_original_pixels_at_sizes_off_the_8_pixel_grid(tiny_model):
    from pipelines.inpaint.pipeline import InpaintPipeline
    from pipelines.outpaint.pipeline import OutpaintPipeline
    from pipelines.inpaint.request import InpaintRequest

    cache = _cache()
    source = noise(70, 66, seed=4)
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (5, 5, 37, 29))
    request = InpaintRequest(prompt="x", image_asset_id="a", mask_asset_id="m", num_inference_steps=2, seed=1)
    out = InpaintPipeline(cache.pipe(tiny_model, "inpaint")).render(request, None, images={"image": source, "mask": mask})
    pixels, original, inside = np.asarray(out[0].image), np.asarray(source), np.asarray(mask) > 0
    assert out[0].image.size == (70, 66) and (pixels[~inside] == original[~inside]).all()

    request = OutpaintRequest(image_asset_id="a", expand_right=13, expand_up=3, num_inference_steps=2, seed=1)
    out = OutpaintPipeline(cache.pipe(tiny_model, "inpaint")).render(request, None, images={"image": source})
    pixels = np.asarray(out[0].image)
    assert out[0].image.size == (83, 69) and (pixels[3:, :70] == original).all()


def test_a_fast_upscale_loads_no_upscaler_even_where_one_is_served(tiny_model):
    from pipelines.registry import OPERATIONS
    from core.settings import Settings
    from tests.conftest import tiny_catalog_for
    from worker.runtime import Runtime

    runtime = Runtime(Settings(default_model=tiny_model, models_file=tiny_catalog_for(tiny_model), device="cpu"))
    fast = runtime.pipeline_for(OPERATIONS["upscale"], "", OPERATIONS["upscale"].request.model_construct(mode="fast"))
    assert fast.pipe is None and runtime._models == {}
    served = runtime.pipeline_for(OPERATIONS["upscale"], "", OPERATIONS["upscale"].request.model_construct(mode="model"))
    assert served.pipe is not None and len(runtime._models) == 1
