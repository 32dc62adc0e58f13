"""The dialects (api/compat/<service>/) beyond their case files: the wait bound answered in each
service's error shape with the run's id (the run goes on), a deployment without an instruct
model refusing Livepeer's image_guidance_scale by name, dialect runs being ordinary runs of the
caller (listed natively, another tenant's key does not see them), and the OpenAPI tags."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.images import encode, noise
from tests.inprocess import inprocess_app


@pytest.fixture
def no_worker(tmp_path):
    """No worker: runs stay queued, so the synchronous routes answer their timeout."""
    app, services, key = inprocess_app(str(tmp_path), compat_wait_seconds=0.1, default_model="tiny/model")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, services


def _png() -> bytes:
    return encode(noise(64, 64))


def test_limewire_past_the_wait_bound_is_an_rfc7807_504_naming_the_run(no_worker):
    client, services = no_worker
    response = client.post("/compat/limewire/image/generation", json={"prompt": "x", "width": 64, "height": 64})
    assert response.status_code == 504 and response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    record = services.runs.get(problem["run_id"])
    assert record is not None and record.status.value == "queued"  # it goes on
    assert response.headers["location"] == f"/v1/generations/{record.run_id}"


def test_livepeer_past_the_wait_bound_names_the_run_in_its_detail(no_worker):
    client, services = no_worker
    response = client.post("/compat/livepeer/image-to-image", data={"prompt": "x", "num_inference_steps": "2"},
                           files={"image": ("a.png", _png(), "image/png")})
    assert response.status_code == 504, response.text
    detail = response.json()["detail"]
    assert services.runs.get(detail["run_id"]).operation == "image-to-image" and "did not end" in detail["msg"]


def test_livepeer_image_guidance_scale_without_an_instruct_model_is_refused_by_name(no_worker):
    client, services = no_worker
    response = client.post("/compat/livepeer/image-to-image", data={"prompt": "make it winter", "image_guidance_scale": "1.5"},
                           files={"image": ("a.png", _png(), "image/png")})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "image_guidance_scale"] and "no instruct" in error["msg"]


def test_dialect_runs_are_the_callers_ordinary_runs(no_worker):
    client, services = no_worker
    run_id = client.post("/compat/imagineo/generate", json={"positive_prompt": "x", "width": 64, "height": 64}).json()["run_id"]
    listed = client.get("/v1/generations").json()["data"]
    assert run_id in [run["run_id"] for run in listed]
    assert client.get(f"/v1/generations/{run_id}").json()["request"]["prompt"] == "x"
    _, other = services.keys.create("someone-else")
    assert client.get(f"/compat/imagineo/generations/{run_id}", headers={"Authorization": f"Bearer {other}"}).status_code == 404


TAGS = {
    "/compat/imagineo/generate": "compat: ImagineoAI", "/compat/imagineo/generations/{run_id}": "compat: ImagineoAI",
    "/compat/imagineo/models": "compat: ImagineoAI", "/compat/limewire/image/generation": "compat: LimeWire",
    "/compat/limewire/image/upscaling": "compat: LimeWire", "/compat/limewire/image/outpainting": "compat: LimeWire",
    "/compat/limewire/image/inpainting": "compat: LimeWire", "/compat/limewire/upload": "compat: LimeWire",
    "/compat/livepeer/image-to-image": "compat: Livepeer",
}


def test_dialect_routes_have_their_own_openapi_tag(no_worker):
    client, _ = no_worker
    paths = client.get("/openapi.json").json()["paths"]
    for path, tag in TAGS.items():
        for operation in paths[path].values():
            assert operation["tags"] == [tag] and {"bearer": []} in operation["security"], path
