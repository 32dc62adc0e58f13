"""Edit by words: search-replace and search-recolor (CLIPSeg mask → inpaint) and general-edit
(InstructPix2Pix), in process on the tiny random-weight models, then end to end through the
real stack. Random weights make the mask arbitrary, so the tests assert what must hold for any
mask: binary, the image's size, every pixel outside it kept, grow only grows."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pipelines.base import NothingMatched
from pipelines.masks import grow
from pipelines.registry import OPERATIONS
from pipelines.general_edit.request import GeneralEditRequest
from pipelines.search_recolor.request import SearchRecolorRequest
from pipelines.search_replace.request import SearchReplaceRequest
from tests.conftest import tiny_catalog_for, wait_for_run
from tests.images import data_url, decode, encode, noise
from tests.test_operations import completed, submit

FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def runtime(tiny_model):
    from core.settings import Settings
    from worker.runtime import Runtime

    return Runtime(Settings(default_model=tiny_model, models_file=tiny_catalog_for(tiny_model), device="cpu"))


def median_threshold(runtime, image: Image.Image, text: str) -> float:
    """A threshold that splits the random model's probabilities in two: a mask with pixels both in and out."""
    from pipelines.text_segmentation import match_probability

    segmenter = runtime.pipeline_for(OPERATIONS["search-replace"], "").segmenter
    return float(np.median(match_probability(segmenter, image, text)))


# --- masks ---------------------------------------------------------------------------------

def test_grow_mask_adds_exactly_the_pixels_within_the_distance():
    seeds = np.zeros((30, 40), dtype=np.uint8)
    seeds[[3, 15, 27], [5, 20, 38]] = 255
    for pixels in (0, 1, 4):
        grown = np.asarray(grow(Image.fromarray(seeds, mode="L"), pixels))
        ys, xs = np.nonzero(seeds)
        rows, cols = np.indices(seeds.shape)
        near = np.zeros(seeds.shape, bool)
        for y, x in zip(ys, xs):
            near |= (np.abs(rows - y) <= pixels) & (np.abs(cols - x) <= pixels)
        assert set(np.unique(grown)) <= {0, 255} and ((grown > 0) == near).all()


# --- in process on the tiny models -------------------------------------------------------------

def test_text_segmentation_and_pix2pix_models_load_from_local_paths(tiny_model):
    from pipelines.device import choose_placement
    from pipelines.loading import load_instruct_pix2pix
    from pipelines.loading import load_text_segmenter

    catalog = Path(tiny_catalog_for(tiny_model)).parent
    segmenter = load_text_segmenter(str(catalog / "tiny-clipseg"), choose_placement("cpu"))
    assert type(segmenter.model).__name__ == "CLIPSegForImageSegmentation"
    pipe = load_instruct_pix2pix(str(catalog / "tiny-pix2pix"), choose_placement("cpu"))
    assert type(pipe).__name__ == "StableDiffusionInstructPix2PixPipeline" and pipe.unet.config.in_channels == 8


def test_the_tiny_pix2pix_builder_returns_the_directory_it_wrote(tiny_model, tmp_path):
    from devkit.tiny_catalog import build_tiny_instruct_pix2pix

    path = build_tiny_instruct_pix2pix(tiny_model, tmp_path / "pix2pix")
    assert path == tmp_path / "pix2pix" and (path / "unet" / "config.json").is_file()


def test_the_worker_keeps_the_segmenter_and_pix2pix_warm(runtime):
    first = runtime.pipeline_for(OPERATIONS["search-recolor"], "", OPERATIONS["search-recolor"].request.model_construct(mask_model_id="tiny-clipseg"))
    edit = runtime.pipeline_for(OPERATIONS["general-edit"], "")
    loads = runtime.models.stats.loads
    assert runtime.pipeline_for(OPERATIONS["search-replace"], "").segmenter is first.segmenter
    assert runtime.pipeline_for(OPERATIONS["general-edit"], "tiny-pix2pix").pipe is edit.pipe
    assert runtime.models.stats.loads == loads  # nothing loaded twice
    assert any(source.endswith("tiny-pix2pix") for source in runtime.models.entries)  # in the LRU, by bytes
    assert edit.pipe.unet is not first.pipe.unet  # its own model, not derived from the base


def test_search_replace_keeps_every_pixel_outside_its_mask_and_returns_the_mask(runtime):
    source = noise(70, 66, seed=4)  # off the 8-pixel grid
    threshold = median_threshold(runtime, source, "the cat")
    request = SearchReplaceRequest(image_asset_id="a", search_prompt="the cat", prompt="a dog", mask_threshold=threshold,
                                   grow_mask=0, return_mask=True, num_images=2, seed=3, **FAST)
    out = runtime.pipeline_for(OPERATIONS["search-replace"], "").render(request, None, images={"image": source})
    assert [item.role for item in out] == ["image", "image", "mask"] and [item.seed for item in out] == [3, 4, 0]
    mask = np.asarray(out[-1].image)
    assert out[-1].image.size == source.size and set(np.unique(mask)) == {0, 255}
    inside, original = mask > 0, np.asarray(source)
    for item in out[:2]:
        pixels = np.asarray(item.image)
        assert item.image.size == source.size and (pixels[~inside] == original[~inside]).all()
        assert (pixels[inside] != original[inside]).any()


def test_grow_mask_only_grows_the_found_region(runtime):
    source = noise(64, 64, seed=5)
    threshold = median_threshold(runtime, source, "the car")
    pipeline = runtime.pipeline_for(OPERATIONS["search-recolor"], "")

    def mask(grow_mask: int) -> np.ndarray:
        request = SearchRecolorRequest(image_asset_id="a", select_prompt="the car", prompt="red", mask_threshold=threshold,
                                       grow_mask=grow_mask, return_mask=True, seed=1, **FAST)
        return np.asarray(pipeline.render(request, None, images={"image": source})[-1].image) > 0

    plain, grown = mask(0), mask(2)
    assert (grown >= plain).all() and grown.sum() > plain.sum()


def test_a_search_that_matches_nothing_raises_nothing_matched(runtime):
    request = SearchReplaceRequest(image_asset_id="a", search_prompt="x", prompt="y", mask_threshold=1.0, **FAST)
    with pytest.raises(NothingMatched, match="mask_threshold"):
        runtime.pipeline_for(OPERATIONS["search-replace"], "").render(request, None, images={"image": noise(64, 64)})


def test_image_guidance_scale_changes_the_general_edit_and_the_seed_fixes_it(runtime):
    pipeline = runtime.pipeline_for(OPERATIONS["general-edit"], "")
    source = noise(70, 66, seed=6)

    def edit(**fields) -> np.ndarray:
        request = GeneralEditRequest(image_asset_id="a", prompt="make it winter", seed=9, **FAST | fields)
        out = pipeline.render(request, None, images={"image": source})
        assert out[0].image.size == source.size
        return np.asarray(out[0].image, dtype=int)

    default = edit()
    assert (edit() == default).all()
    assert np.abs(edit(image_guidance_scale=3.0) - default).mean() > 1


def test_a_general_edit_stops_at_the_step_its_progress_callback_says_so(runtime):
    from pipelines.base import RenderInterrupted

    steps = []

    def progress(step: int, total: int) -> bool:
        steps.append(step)
        return step < 2

    request = GeneralEditRequest(image_asset_id="a", prompt="make it winter", seed=1, num_inference_steps=5)
    with pytest.raises(RenderInterrupted):
        runtime.pipeline_for(OPERATIONS["general-edit"], "").render(request, progress, images={"image": noise(64, 64)})
    assert steps == [1, 2]


# --- end to end: API → Celery → pipelines → S3 ------------------------------------------------

def fetch(image: dict) -> Image.Image:
    return decode(httpx.get(image["url"]).content)


def test_search_replace_end_to_end_with_the_mask(api, runtime):
    source = noise(72, 64, seed=7)
    threshold = median_threshold(runtime, source, "the cat")
    run = completed(api, submit(api, "search-replace", image=data_url(source), search_prompt="the cat", prompt="a dog",
                                mask_threshold=threshold, grow_mask=1, return_mask=True, seed=2, **FAST))
    assert [image["role"] for image in run["images"]] == ["image", "mask"]
    edited, mask = fetch(run["images"][0]), np.asarray(fetch(run["images"][1]))
    assert edited.size == source.size and mask.shape == (64, 72) and set(np.unique(mask)) == {0, 255}
    outside = mask == 0
    assert (np.asarray(edited.convert("RGB"))[outside] == np.asarray(source)[outside]).all()
    assert run["operation"] == "search-replace" and run["request"]["search_prompt"] == "the cat"


def test_search_recolor_end_to_end_multipart(api):
    files = {"image": ("car.png", encode(noise(64, 64, seed=8)), "image/png")}
    run = completed(api, submit(api, "search-recolor", files=files, select_prompt="the car", prompt="glossy red",
                                mask_threshold=0.0, seed=4, num_inference_steps=2))
    assert [image["role"] for image in run["images"]] == ["image"] and run["request"]["strength"] == 0.75
    assert (run["images"][0]["width"], run["images"][0]["height"]) == (64, 64)


def test_a_search_that_matches_nothing_fails_with_a_nothing_matched_problem(api):
    run = submit(api, "search-replace", image=data_url(noise(64, 64)), search_prompt="a unicorn", prompt="x",
                 mask_threshold=1.0, **FAST)
    done = wait_for_run(api, run["run_id"])
    assert done["status"] == "failed" and done["images"] == []
    assert done["error"]["type"] == "/problems/nothing-matched" and done["error"]["status"] == 422


def test_general_edit_end_to_end(api):
    source = noise(72, 64, seed=9)
    run = completed(api, submit(api, "general-edit", image=data_url(source), prompt="make it winter",
                                image_guidance_scale=2.0, num_images=2, seed=5, **FAST))
    assert run["operation"] == "general-edit" and run["model_id"] == ""
    assert [(image["width"], image["height"], image["seed"]) for image in run["images"]] == [(72, 64, 5), (72, 64, 6)]
    assert fetch(run["images"][0]).size == source.size


def test_models_lists_the_text_segmenter_and_the_pix2pix_model(api):
    kinds = {model["id"]: model["kind"] for model in api.get("/v1/models").json()["models"]}
    assert kinds["tiny-clipseg"] == "text-segmentation" and kinds["tiny-pix2pix"] == "instruct-pix2pix"


PNG64 = data_url(noise(64, 64, seed=13))


@pytest.mark.parametrize(
    "operation, fields, slug",
    [
        ("search-replace", {"image": PNG64, "prompt": "a dog"}, "validation-error"),  # no search_prompt
        ("search-replace", {"image": PNG64, "search_prompt": "", "prompt": "a dog"}, "validation-error"),
        ("search-replace", {"search_prompt": "cat", "prompt": "a dog"}, "validation-error"),  # no image
        ("search-replace", {"image": PNG64, "search_prompt": "cat", "prompt": "dog", "mask_threshold": 1.5}, "validation-error"),
        ("search-replace", {"image": PNG64, "search_prompt": "cat", "prompt": "dog", "mask_model_id": "tiny-upscaler"}, "unknown-model"),
        ("search-replace", {"image": PNG64, "search_prompt": "cat", "prompt": "dog", "model_id": "tiny-pix2pix"}, "unknown-model"),
        ("search-recolor", {"image": PNG64, "prompt": "red"}, "validation-error"),  # no select_prompt
        ("search-recolor", {"image": PNG64, "select_prompt": "car", "prompt": "red", "grow_mask": 21}, "validation-error"),
        ("search-recolor", {"image": PNG64, "select_prompt": "car", "prompt": "red", "grow_mask": -1}, "validation-error"),
        ("search-recolor", {"image": PNG64, "select_prompt": "car", "prompt": "red", "num_inference_steps": 1}, "validation-error"),
        ("search-recolor", {"image": data_url(noise(32, 64)), "select_prompt": "car", "prompt": "red"}, "invalid-image"),
        ("general-edit", {"prompt": "make it winter"}, "validation-error"),  # no image
        ("general-edit", {"image": PNG64}, "validation-error"),  # no instruction
        ("general-edit", {"image": PNG64, "prompt": "x", "image_guidance_scale": 11}, "validation-error"),
        ("general-edit", {"image": PNG64, "prompt": "x", "model_id": "tiny-clipseg"}, "unknown-model"),
        ("general-edit", {"image": PNG64, "prompt": "x", "loras": {"tiny-lora": 1}}, "validation-error"),
    ],
)
def test_bad_edit_input_is_a_422_problem(api, operation, fields, slug):
    problem = submit(api, operation, expect=422, **fields)
    assert problem["type"] == f"/problems/{slug}" and problem["detail"]


def test_a_deployment_without_the_models_refuses_the_edits_at_submit(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    with TestClient(create_app(unit_services(tmp_path)), raise_server_exceptions=False) as client:
        for operation, fields in (("search-replace", {"search_prompt": "cat", "prompt": "dog"}),
                                  ("search-recolor", {"select_prompt": "car", "prompt": "red"}),
                                  ("general-edit", {"prompt": "make it winter"})):
            response = client.post(f"/v1/{operation}", json={"image": PNG64, **fields})
            assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model", response.text
