"""A typed client generated from the service's /openapi.json by a standard generator
(openapi-python-client, offline, in this process) builds without a broken reference, and works:
it submits a run, reads it back and reads a problem, typed, against the in-process app
(tests/inprocess.py). tests/test_fuzz.py checks the answers match the document."""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from openapi_python_client import generate
from openapi_python_client.config import Config, ConfigFile, MetaType

from tests.inprocess import inprocess_app

# What openapi-python-client cannot express: a request body of raw image bytes (POST /v1/assets
# also takes JSON and multipart, and is generated with those; LimeWire's /upload takes raw bytes
# only, as LimeWire documents, and is left out of the client).
GENERATOR_LIMITS = ("Unsupported content type image/",)


def _generated_package(document: dict, where: Path) -> object:
    (where / "openapi.json").write_text(json.dumps(document))
    config = Config.from_sources(
        ConfigFile(project_name_override="renderq-client", package_name_override="renderq_client", post_hooks=[]),
        MetaType.NONE, where / "openapi.json", "utf-8", overwrite=True, output_path=where / "renderq_client",
    )
    errors = generate(config=config)
    unexpected = [error for error in errors if not any(limit in str(error.detail) for limit in GENERATOR_LIMITS)]
    assert not unexpected, "\n".join(f"{error.header}: {error.detail}" for error in unexpected)
    sys.path.insert(0, str(where))
    return importlib.import_module("renderq_client")


def test_a_generated_client_submits_and_reads_a_run_typed():
    app, _, key = inprocess_app(tempfile.mkdtemp(prefix="renderq-client-"))
    http = TestClient(app)
    package = _generated_package(http.get("/openapi.json").json(), Path(tempfile.mkdtemp(prefix="renderq-client-gen-")))
    submit = importlib.import_module("renderq_client.api.generations.submit_generation_v1_generations_post")
    get = importlib.import_module("renderq_client.api.generations.get_generation_v1_generations_run_id_get")
    models = importlib.import_module("renderq_client.models")

    client = package.AuthenticatedClient(base_url="http://testserver", token=key).set_httpx_client(http)
    http.headers["Authorization"] = f"Bearer {key}"  # set_httpx_client hands over the transport as is

    answer = submit.sync_detailed(client=client, body=models.GenerationCreate(prompt="a red fox", width=64, height=64,
                                                                            num_inference_steps=2), x_request_id="client-1")
    assert answer.status_code == 202, answer.content
    run = answer.parsed
    assert isinstance(run, models.RunView) and run.status == models.RunStatus.QUEUED
    assert answer.headers["x-request-id"] == "client-1"

    again = get.sync(run.run_id, client=client)
    assert isinstance(again, models.RunView) and again.run_id == run.run_id and again.operation == "text-to-image"
    assert again.request["width"] == 64 and again.created_at.year >= 2024  # typed: a datetime, not a string

    missing = get.sync("0" * 32, client=client)
    assert isinstance(missing, models.Problem) and missing.status == 404
