"""Every operation folder keeps the contract the rest of the house is derived from: a typed
request that answers what the API and the worker ask of it, a declaration, a pipeline class
that is a `Pipeline`, a body and a route."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import pipelines
from api.bodies import BODIES
from pipelines.base import Pipeline
from pipelines.registry import OPERATIONS, pipeline_class
from pipelines.request_parts import RenderRequest

FOLDERS = sorted(p.name for p in Path(pipelines.__file__).parent.iterdir() if (p / "request.py").exists())


def test_every_operation_folder_is_registered_once_under_its_own_name():
    assert sorted(operation.module for operation in OPERATIONS.values()) == FOLDERS
    assert len(FOLDERS) == 15 and list(OPERATIONS)[0] == "text-to-image"


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_keeps_the_pipeline_contract(name):
    operation = OPERATIONS[name]
    assert issubclass(operation.request, RenderRequest)
    cls = pipeline_class(operation)
    assert issubclass(cls, Pipeline) and not inspect.isabstract(cls)
    assert cls.operation == name
    assert cls.__module__ == f"pipelines.{operation.module}.pipeline"
    body = BODIES[name]
    assert body.OPERATION is operation and issubclass(body, operation.body or operation.request)
    assert body.SLOTS == tuple(slot.name for slot in operation.slots)


def test_a_pipeline_renders_a_list_of_jobs_into_each_jobs_images():
    from PIL import Image

    from pipelines.base import GeneratedImage, Job

    class Echo(Pipeline):
        operation = "echo"

        def render(self, request, on_progress=None, images=None):
            return [GeneratedImage(image=Image.new("RGB", (1, 1)), seed=request)] * request

    assert [[image.seed for image in images] for images in Echo()([Job(1), Job(2)])] == [[1], [2, 2]]


def test_a_pipeline_without_render_cannot_be_made():
    class Incomplete(Pipeline):
        operation = "incomplete"

    with pytest.raises(TypeError):
        Incomplete()


def test_every_operation_but_text_to_image_has_its_route():
    from api.app import create_app

    paths = set(create_app().openapi()["paths"])
    assert {f"/v1/{name}" for name in OPERATIONS if name != "text-to-image"} <= paths
    assert "/v1/generations" in paths and "/v1/text-to-image" not in paths
