"""Control operations (sketch, structure, style, style-transfer): the OpenCV and depth
preprocessors on synthetic images, the ControlNet / IP-Adapter pipelines on tiny random-weight
models in process, then each operation end to end through the real stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines.control import canny_edges, depth_map, line_art
from pipelines.loading import load_depth_estimator
from pipelines.device import choose_placement
from pipelines.registry import OPERATIONS, pipeline_class
from pipelines.sketch.request import SketchRequest
from pipelines.style.request import StyleRequest
from pipelines.style_transfer.request import StyleTransferRequest
from pipelines.text_to_image.request import TextToImageRequest
from tests.conftest import wait_for_run
from tests.images import data_url, encode, noise
from tests.test_operations import completed, fetch, submit, upload

FAST = {"num_inference_steps": 2, "guidance_scale": 1.0}


def square(size: int = 64, box: tuple[int, int, int, int] = (16, 16, 47, 47)) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle(box, fill="white")
    return image


def sketch_of_a_circle(size: tuple[int, int] = (96, 72)) -> Image.Image:
    """Black pencil on white paper."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).ellipse((20, 12, 76, 60), outline="black", width=2)
    return image


# --- preprocessors ---------------------------------------------------------------------------

def test_canny_edges_lie_on_the_square_boundary_only():
    edges = np.asarray(canny_edges(square()))[..., 0]
    assert edges.shape == (64, 64) and set(np.unique(edges)) == {0, 255}
    ys, xs = np.nonzero(edges)
    assert ys.min() >= 14 and ys.max() <= 49 and xs.min() >= 14 and xs.max() <= 49  # on the boundary, ±2 px
    assert not edges[22:42, 22:42].any() and not edges[:10].any()  # nothing inside or far outside
    assert edges[16:48, 15:18].any() and edges[15:18, 16:48].any()  # left and top sides found


def test_line_art_turns_dark_strokes_on_paper_into_white_lines_on_black():
    drawing = sketch_of_a_circle()
    lines = np.asarray(line_art(drawing))[..., 0]
    stroke = np.asarray(drawing.convert("L")) < 128
    assert (lines[stroke] == 255).all() and (lines[~stroke] == 0).mean() > 0.99
    thick = np.asarray(line_art(drawing, thicken=True))[..., 0]
    assert (thick == 255).sum() > (lines == 255).sum() * 1.5 and (thick[lines == 255] == 255).all()
    # Already white-on-black line art stays as it is; a transparent background reads as paper.
    assert (np.asarray(line_art(Image.fromarray(lines)))[..., 0] == lines).all()
    transparent = Image.new("RGBA", drawing.size, (0, 0, 0, 0))
    ImageDraw.Draw(transparent).ellipse((20, 12, 76, 60), outline=(0, 0, 0, 255), width=2)
    assert (np.asarray(line_art(transparent))[..., 0] == lines).mean() > 0.99


@pytest.fixture(scope="module")
def catalog_dir(tiny_model) -> Path:
    from tests.conftest import tiny_catalog_for

    return Path(tiny_catalog_for(tiny_model)).parent


def test_depth_model_loads_from_a_local_directory_and_maps_the_image_size(catalog_dir):
    estimator = load_depth_estimator(str(catalog_dir / "tiny-depth"), choose_placement("cpu"))
    depth = np.asarray(depth_map(estimator, noise(80, 48, seed=3)))
    assert depth.shape == (48, 80, 3) and depth.min() == 0 and depth.max() == 255


# --- pipelines in process, through the worker's model cache ----------------------------------

@pytest.fixture(scope="module")
def cache(tiny_model):
    from pipelines.loading import load_controlnet, load_text_to_image
    from worker.model_cache import ModelCache

    placement = choose_placement("cpu")
    return ModelCache(lambda s: load_text_to_image(s, placement), 2**30, lambda s: load_controlnet(s, placement))


def pixels(generated) -> np.ndarray:
    return np.asarray(generated[0].image).astype(int)


def test_sketch_output_follows_the_control_image_and_control_strength_matters(tiny_model, catalog_dir, cache):
    pipe = cache.pipe(tiny_model, "text-to-image", controlnet=str(catalog_dir / "tiny-controlnet-lineart"))
    assert pipe.unet is cache.pipe(tiny_model, "text-to-image").unet  # from_pipe shares the base
    sketch = pipeline_class(OPERATIONS["sketch"])(pipe, "tiny", control_type="lineart")
    drawing = sketch_of_a_circle((84, 70))

    def render(strength: float):
        request = SketchRequest(prompt="a ring", image_asset_id="a", control_strength=strength, seed=5, **FAST)
        return sketch.render(request, images={"image": drawing})

    loose, strict = render(0.0), render(1.0)
    assert loose[0].image.size == (80, 64)  # the drawing's size, rounded down to multiples of 8
    assert np.abs(pixels(loose) - pixels(strict)).mean() > 1  # same seed: only the strength differs
    assert strict[0].parameters["control_strength"] == 1.0 and strict[0].parameters["control_type"] == "lineart"


def test_sketch_returns_the_line_art_it_rendered_from_when_asked(tiny_model, catalog_dir, cache):
    pipe = cache.pipe(tiny_model, "text-to-image", controlnet=str(catalog_dir / "tiny-controlnet-lineart"))
    sketch = pipeline_class(OPERATIONS["sketch"])(pipe, "tiny", control_type="lineart")
    drawing = sketch_of_a_circle((84, 70))
    request = SketchRequest(prompt="a ring", image_asset_id="a", seed=5, num_images=2, return_control_map=True, **FAST)
    out = sketch.render(request, images={"image": drawing})
    assert [item.role for item in out] == ["image", "image", "control"] and [item.seed for item in out] == [5, 6, 0]
    expected = line_art(drawing.resize((80, 64), Image.Resampling.LANCZOS))  # at the output size
    assert out[-1].image.size == (80, 64) and (np.asarray(out[-1].image) == np.asarray(expected)).all()
    assert out[-1].parameters["role"] == "control"
    assert [item.role for item in sketch.render(request.model_copy(update={"return_control_map": False}), images={"image": drawing})] == ["image", "image"]


def ip_adapter(catalog_dir) -> tuple[str, dict]:
    return str(catalog_dir / "tiny-ip-adapter"), {"weight_name": "ip-adapter.safetensors"}


def test_style_fidelity_matters_and_text_to_image_is_unchanged_after_a_style_run(tiny_model, catalog_dir, cache):
    text = TextToImageRequest(prompt="a mug", width=64, height=64, seed=9, **FAST)
    before = pixels(pipeline_class(OPERATIONS["text-to-image"])(cache.pipe(tiny_model, "text-to-image"), "tiny").render(text))
    reference = noise(48, 40, seed=4)

    def render(fidelity: float):  # as the worker runs a job: the pipeline from the cache, then the render
        style = pipeline_class(OPERATIONS["style"])(cache.pipe(tiny_model, "text-to-image", ip_adapter=ip_adapter(catalog_dir)), "tiny")
        request = StyleRequest(prompt="a mug", style_image_asset_id="a", fidelity=fidelity, width=80, height=64, seed=9, **FAST)
        return style.render(request, images={"style_image": reference})

    plain, styled = render(0.0), render(1.0)
    assert styled[0].image.size == (80, 64)
    assert np.abs(pixels(plain) - pixels(styled)).mean() > 1
    # Back to a job without a style image: the IP-Adapter is switched off, the UNet is as before.
    after = pixels(pipeline_class(OPERATIONS["text-to-image"])(cache.pipe(tiny_model, "text-to-image"), "tiny").render(text))
    assert (after == before).all()
    assert (pixels(render(1.0)) == pixels(styled)).all() and cache.stats.ip_adapter_loads == 1  # on again, no reload


def test_style_transfer_keeps_the_content_at_zero_change_and_styles_it_otherwise(tiny_model, catalog_dir, cache):
    pipe = cache.pipe(tiny_model, "image-to-image", controlnet=str(catalog_dir / "tiny-controlnet-canny"),
                      ip_adapter=ip_adapter(catalog_dir))
    transfer = pipeline_class(OPERATIONS["style-transfer"])(pipe, "tiny", control_type="canny")
    content, reference = square(64), noise(40, 40, seed=8)

    def render(**knobs):  # 2 steps × change_strength 0.9: one denoising step
        request = StyleTransferRequest(image_asset_id="a", style_image_asset_id="b", seed=3, **FAST, **knobs)
        return transfer.render(request, images={"image": content, "style_image": reference})

    assert (pixels(render(change_strength=0.0)) == np.asarray(content)).all()
    kept, edges = render(change_strength=0.0, return_control_map=True)
    assert (kept.role, edges.role) == ("image", "control") and (np.asarray(edges.image) == np.asarray(canny_edges(content))).all()
    weak, strong = render(style_strength=0.0), render(style_strength=1.0)
    assert weak[0].image.size == (64, 64) and np.abs(pixels(weak) - pixels(strong)).mean() > 1
    kept = render(composition_fidelity=1.0)
    assert np.abs(pixels(kept) - pixels(render(composition_fidelity=0.0))).mean() > 1


def test_a_controlnet_render_stops_at_the_step_its_progress_callback_says_so(tiny_model, catalog_dir, cache):
    from pipelines.base import RenderInterrupted

    pipe = cache.pipe(tiny_model, "text-to-image", controlnet=str(catalog_dir / "tiny-controlnet-lineart"))
    sketch = pipeline_class(OPERATIONS["sketch"])(pipe, "tiny", control_type="lineart")
    steps = []

    def progress(step: int, total: int) -> bool:
        steps.append(step)
        return step < 2

    request = SketchRequest(prompt="a ring", image_asset_id="a", seed=1, num_inference_steps=5, guidance_scale=1.0)
    with pytest.raises(RenderInterrupted):
        sketch.render(request, progress, images={"image": sketch_of_a_circle((64, 64))})
    assert steps == [1, 2] and not pipe._interrupt  # the flag is reset for the next job


def test_a_controlnet_entry_must_name_its_control_type():
    from pydantic import ValidationError

    from storage.models_catalog import ModelEntry

    with pytest.raises(ValidationError, match="control_type"):
        ModelEntry(id="cn", kind="controlnet", source="./cn", options={"control_type": "pose"})
    with pytest.raises(ValidationError, match="weight_name"):
        ModelEntry(id="ip", kind="ip-adapter", source="./ip")


# --- end to end: API → Celery → pipelines → S3 ----------------------------------------------

def test_sketch_end_to_end_from_alwrity_fields(api):
    kinds = {model["kind"] for model in api.get("/v1/models").json()["models"]}
    assert {"controlnet", "ip-adapter", "depth-estimator"} <= kinds
    run = completed(api, submit(api, "sketch", prompt="Modern office interior", control_image_base64=data_url(sketch_of_a_circle()),
                                control_strength=0.8, seed=11, **FAST))
    assert run["operation"] == "sketch" and run["request"]["control_strength"] == 0.8
    assert fetch(run["images"][0]).size == (96, 72) and run["images"][0]["seed"] == 11


@pytest.mark.parametrize("structure_type", ["edges", "depth"])
def test_structure_end_to_end_keeps_the_input_size(api, structure_type):
    asset = upload(api, square(80))
    run = completed(api, submit(api, "structure", prompt="a box", image_asset_id=asset["asset_id"],
                                structure_type=structure_type, style_preset="cinematic", seed=2, **FAST))
    assert run["request"]["structure_type"] == structure_type and fetch(run["images"][0]).size == (80, 80)
    assert [image["role"] for image in run["images"]] == ["image"]
    assert run["request"]["prompt"] != "a box" and "a box" in run["request"]["prompt"]  # the preset wrapped it


def test_style_end_to_end_with_an_aspect_ratio_then_text_to_image_on_the_same_worker(api):
    files = {"style_image": ("style.png", encode(noise(48, 48, seed=6)), "image/png")}
    run = completed(api, submit(api, "style", files=files, prompt="a lighthouse", aspect_ratio="16:9", fidelity=0.6,
                                quality="LOW", seed=4, **FAST))
    assert run["request"]["fidelity"] == 0.6 and run["request"]["style_image_asset_id"].startswith("ast_")
    assert fetch(run["images"][0]).size == (512, 288)  # LOW's 384² area at 16:9
    after = api.post("/v1/generations", json={"prompt": "a mug", "width": 64, "height": 64, "seed": 1, **FAST})
    assert wait_for_run(api, after.json()["run_id"])["status"] == "completed"


def test_structure_returns_its_edge_map_as_a_control_image(api):  # not charged: tests/test_credits.py
    asset = upload(api, square(64))
    run = completed(api, submit(api, "structure", prompt="a box", image_asset_id=asset["asset_id"], return_control_map=True,
                                controlnet_id="tiny-controlnet-canny", seed=2, **FAST))
    assert [(image["role"], image["seed"]) for image in run["images"]] == [("image", 2), ("control", 0)]
    assert run["request"]["controlnet_id"] == "tiny-controlnet-canny"
    assert (np.asarray(fetch(run["images"][1]).convert("RGB")) == np.asarray(canny_edges(square(64)))).all()


def test_style_transfer_end_to_end_with_both_images(api):
    style = upload(api, noise(40, 40, seed=7))
    run = completed(api, submit(api, "style-transfer", image=data_url(square(64)), style_image_asset_id=style["asset_id"],
                                change_strength=0.5, composition_fidelity=0.8, style_strength=0.9, seed=3,
                                num_inference_steps=4, guidance_scale=1.0))
    assert run["operation"] == "style-transfer" and fetch(run["images"][0]).size == (64, 64)
    assert [image["role"] for image in run["images"]] == ["image"]
    assert {"image_asset_id", "style_image_asset_id"} <= set(run["request"])


@pytest.mark.parametrize(
    "operation, fields, needle",
    [
        ("sketch", {"prompt": "a"}, "image is required"),
        ("sketch", {"prompt": "a", "image": "IMAGE", "control_strength": 1.5}, "control_strength"),
        ("structure", {"prompt": "a", "image": "IMAGE", "structure_type": "normals"}, "structure_type"),
        ("style", {"prompt": "a"}, "style_image is required"),
        ("style", {"prompt": "a", "style_image": "IMAGE", "fidelity": -0.1}, "fidelity"),
        ("style", {"prompt": "a", "style_image": "IMAGE", "aspect_ratio": "16:9", "width": 64}, "aspect_ratio"),
        ("style-transfer", {"image": "IMAGE"}, "style_image is required"),
        ("style-transfer", {"image": "IMAGE", "style_image": "IMAGE", "change_strength": 2}, "change_strength"),
    ],
    ids=["no-control-image", "strength-over-1", "unknown-structure-type", "no-style-image", "fidelity-below-0",
         "aspect-and-width", "transfer-without-style", "change-over-1"],
)
def test_bad_control_requests_are_422_problems(api, operation, fields, needle):
    image = data_url(noise(64, 64))
    body = {k: image if v == "IMAGE" else v for k, v in fields.items()}
    problem = submit(api, operation, expect=422, **body)
    assert needle in str(problem)


def test_a_deployment_without_control_models_refuses_at_submit(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    image = data_url(noise(64, 64))
    with TestClient(create_app(unit_services(tmp_path)), raise_server_exceptions=False) as client:
        for operation, body, missing in [
            ("sketch", {"prompt": "a", "image": image}, "lineart or scribble ControlNet"),
            ("structure", {"prompt": "a", "image": image, "structure_type": "depth"}, "depth ControlNet"),
            ("style", {"prompt": "a", "style_image": image}, "ip-adapter"),
        ]:
            response = client.post(f"/v1/{operation}", json=body)
            assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model", response.text
            assert missing in response.json()["detail"]


# --- which ControlNet / IP-Adapter: fitting the base the job renders on -----------------------

def two_base_catalog(tmp_path: Path) -> Path:
    """A default (SD 1.5-like) base and an `sdxl` base; ControlNets and IP-Adapters for one or
    the other (sources are never loaded: these tests stop at submit)."""
    models = [
        {"id": "sdxl", "kind": "base", "source": "./sdxl"},
        {"id": "lineart-sd15", "kind": "controlnet", "source": "./a", "options": {"control_type": "lineart"}},
        {"id": "canny-sd15", "kind": "controlnet", "source": "./b", "base": "default", "options": {"control_type": "canny"}},
        {"id": "canny-sdxl", "kind": "controlnet", "source": "./c", "base": ["sdxl"], "options": {"control_type": "canny"}},
        {"id": "ip-sd15", "kind": "ip-adapter", "source": "./d", "options": {"weight_name": "ip.safetensors"}},
    ]
    path = tmp_path / "models.json"
    path.write_text(__import__("json").dumps({"models": models}))
    return path


def test_the_catalog_picks_the_controlnet_and_ip_adapter_that_fit_the_base(tmp_path):
    from storage.models_catalog import ModelCatalog
    from core.settings import Settings

    catalog = ModelCatalog.from_settings(Settings(models_file=two_base_catalog(tmp_path), default_model="sd15-hub-id"))
    assert catalog.companion("controlnet", "", ("canny",)).id == "canny-sd15"
    assert catalog.companion("controlnet", "default", ("canny",)).id == "canny-sd15"
    assert catalog.companion("controlnet", "sdxl", ("canny",)).id == "canny-sdxl"
    assert catalog.companion("controlnet", "sdxl", ("lineart", "scribble")) is None  # lineart-sd15: no base = default
    assert catalog.companion("ip-adapter", "").id == "ip-sd15" and catalog.companion("ip-adapter", "sdxl") is None
    assert catalog.get("canny-sdxl").fits("sdxl") and not catalog.get("canny-sdxl").fits("")
    # A named entry is taken only where it fits (kind, control type, base).
    assert catalog.companion("controlnet", "sdxl", ("canny",), "canny-sdxl").id == "canny-sdxl"
    assert catalog.companion("controlnet", "", ("canny",), "canny-sdxl") is None
    assert catalog.companion("controlnet", "", ("lineart",), "canny-sd15") is None
    assert catalog.companion("ip-adapter", "", model_id="canny-sd15") is None


def test_submit_refuses_a_control_operation_with_no_model_for_its_base(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    image = data_url(noise(64, 64))
    services = unit_services(tmp_path, models_file=two_base_catalog(tmp_path), default_model="sd15-hub-id")
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        for operation, body, missing in [
            ("sketch", {"prompt": "a", "image": image, "model_id": "sdxl"},
             "no lineart or scribble ControlNet for base model 'sdxl' (only for base model 'default')"),
            ("style", {"prompt": "a", "style_image": image, "model_id": "sdxl"},
             "no ip-adapter model for base model 'sdxl' (only for base model 'default')"),
            ("style-transfer", {"image": image, "style_image": image, "model_id": "sdxl"}, "no ip-adapter model for base model 'sdxl'"),
        ]:
            response = client.post(f"/v1/{operation}", json=body)
            assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model", response.text
            assert missing in response.json()["detail"]
        # The same body on a base the models fit is taken.
        response = client.post("/v1/structure", json={"prompt": "a", "image": image, "model_id": "sdxl"})
        assert response.status_code == 202, response.text
        response = client.post("/v1/sketch", json={"prompt": "a", "image": image})
        assert response.status_code == 202, response.text


def test_controlnet_id_and_ip_adapter_id_choose_an_entry_checked_at_submit(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    image = data_url(noise(64, 64))
    services = unit_services(tmp_path, models_file=two_base_catalog(tmp_path), default_model="sd15-hub-id")
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        models = {m["id"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["canny-sdxl"]["control_type"] == "canny" and models["canny-sdxl"]["base"] == ["sdxl"]
        for operation, body, detail in [
            ("sketch", {"prompt": "a", "image": image, "controlnet_id": "canny-sd15"},
             "controlnet_id: 'canny-sd15' is a canny ControlNet; this request takes lineart or scribble"),
            ("structure", {"prompt": "a", "image": image, "controlnet_id": "canny-sdxl"},
             "controlnet_id: 'canny-sdxl' fits base model 'sdxl', not 'default'"),
            ("structure", {"prompt": "a", "image": image, "controlnet_id": "ip-sd15"}, "controlnet_id: no controlnet model 'ip-sd15'"),
            ("style", {"prompt": "a", "style_image": image, "ip_adapter_id": "nope"}, "ip_adapter_id: no ip-adapter model 'nope'"),
            ("style-transfer", {"image": image, "style_image": image, "ip_adapter_id": "ip-sd15", "model_id": "sdxl",
                                "controlnet_id": "canny-sdxl"}, "ip_adapter_id: 'ip-sd15' fits base model 'default', not 'sdxl'"),
        ]:
            response = client.post(f"/v1/{operation}", json=body)
            assert response.status_code == 422 and response.json()["type"] == "/problems/unknown-model", response.text
            assert response.json()["detail"].startswith(detail)
        # The run records the entry used: the one named, or the first that fits.
        named = client.post("/v1/structure", json={"prompt": "a", "image": image, "model_id": "sdxl", "controlnet_id": "canny-sdxl"})
        first = client.post("/v1/style-transfer", json={"image": image, "style_image": image})
        assert named.status_code == first.status_code == 202, first.text
        assert named.json()["request"]["controlnet_id"] == "canny-sdxl"
        assert (first.json()["request"]["controlnet_id"], first.json()["request"]["ip_adapter_id"]) == ("canny-sd15", "ip-sd15")


@pytest.mark.parametrize("operation, fields", [("sketch", {"prompt": "a ring"}), ("style", {"prompt": "a ring"})])
def test_a_control_image_file_part_is_the_image(tmp_path, operation, fields):
    """ALwrity's `control_image` works as a multipart file part as it does as `control_image_base64`
    in JSON: the drawing of sketch, the style reference of style."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    png = ("drawing.png", encode(sketch_of_a_circle()), "image/png")
    services = unit_services(tmp_path, models_file=two_base_catalog(tmp_path), default_model="sd15-hub-id")
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        response = client.post(f"/v1/{operation}", data=fields, files={"control_image": png})
        assert response.status_code == 202, response.text
        slot = "image" if operation == "sketch" else "style_image"
        asset = services.assets.get(response.json()["request"][f"{slot}_asset_id"])
        assert (asset.width, asset.height) == (96, 72)
        both = client.post(f"/v1/{operation}", data=fields, files={"control_image": png, slot: png})
        assert both.status_code == 422 and f"not as file parts {slot} and control_image" in both.json()["detail"]
        multipart = client.get("/openapi.json").json()["paths"][f"/v1/{operation}"]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert multipart["schema"]["properties"]["control_image"]["format"] == "binary"
