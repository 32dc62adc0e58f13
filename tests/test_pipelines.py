"""The text-to-image pipeline on the tiny random-weight model, in process."""

from __future__ import annotations

import pytest

from pipelines.base import RenderInterrupted
from pipelines.device import choose_placement
from pipelines.png import encode_png, read_parameters
from pipelines.text_to_image.request import TextToImageRequest
from pipelines.loading import load_text_to_image
from pipelines.text_to_image.pipeline import TextToImagePipeline
from devkit.tiny_model import is_tiny_model


@pytest.fixture(scope="module")
def pipeline(tiny_model) -> TextToImagePipeline:
    return TextToImagePipeline(load_text_to_image(tiny_model, choose_placement("cpu")), tiny_model)


def request(**fields) -> TextToImageRequest:
    return TextToImageRequest(prompt="a mug", width=64, height=64, num_inference_steps=3, seed=5).model_copy(update=fields)


def test_tiny_model_is_marked_and_small(tiny_model):
    from pathlib import Path

    assert is_tiny_model(tiny_model)
    size = sum(p.stat().st_size for p in Path(tiny_model).rglob("*") if p.is_file())
    assert size < 20 * 1024 * 1024


def test_images_have_the_requested_size_and_consecutive_seeds(pipeline):
    images = pipeline.render(request(width=64, height=128, num_images=3))
    assert [image.image.size for image in images] == [(64, 128)] * 3
    assert [image.seed for image in images] == [5, 6, 7]


def test_an_image_depends_only_on_its_own_seed(pipeline):
    batch = pipeline.render(request(num_images=2))
    alone = pipeline.render(request(seed=6))
    assert alone[0].image.tobytes() == batch[1].image.tobytes()
    assert batch[0].image.tobytes() != batch[1].image.tobytes()


def test_progress_is_reported_after_every_step(pipeline):
    calls = []
    pipeline.render(request(num_inference_steps=4), lambda step, total: calls.append((step, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_progress_callback_can_stop_the_render(pipeline):
    calls = []

    def stop_after_two(step, total):
        calls.append(step)
        return step < 2

    with pytest.raises(RenderInterrupted):
        pipeline.render(request(num_inference_steps=10), stop_after_two)
    assert calls == [1, 2]
    assert len(pipeline.render(request())) == 1  # the pipeline is usable again


def test_png_carries_its_generation_parameters(pipeline):
    image = pipeline.render(request())[0]
    parameters = read_parameters(encode_png(image.image, image.parameters))
    assert parameters["prompt"] == "a mug" and parameters["seed"] == 5 and parameters["num_inference_steps"] == 3


def test_a_missing_model_fails_to_load():
    with pytest.raises(Exception):
        load_text_to_image("/nonexistent/model", choose_placement("cpu"))
