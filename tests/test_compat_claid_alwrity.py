"""The Claid and ALwrity dialects (api/compat/claid, api/compat/alwrity), tried as a migrating
user would: every request example of the two reference documents and every field each documents,
kept as data (tests/compat_cases/<service>.json, one line a case), sent as written (host
changed, sizes and steps shrunk where the request sets them) to the in-process API, with a
worker without a model (tests/compat_worker.py) completing the runs, and the answer checked
against what the document promises (status, size, count, fields, errors). A case marked
`deviation` is one renderq refuses by design, per field, in the service's error shape."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from storage.destinations import Destination
from tests.compat_worker import FakeWorker
from tests.inprocess import inprocess_app
from tests.test_docs import docs_catalog

CASES = Path(__file__).parent / "compat_cases"
SERVICES = {name: json.loads((CASES / f"{name}.json").read_text()) for name in ("claid", "alwrity")}


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _placeholders() -> dict[str, str]:
    photo = _png(Image.new("RGB", (64, 64), (30, 120, 200)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    return {
        "$PNG64": "data:image/png;base64," + base64.b64encode(photo).decode(),
        "$B64_64": base64.b64encode(photo).decode(),
        "$MASK64": "data:image/png;base64," + base64.b64encode(_png(mask)).decode(),
        "$TEXT1025": "x" * 1025,
    }


PLACEHOLDERS = _placeholders()


def _substituted(value):
    if isinstance(value, dict):
        return {k: _substituted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v) for v in value]
    return PLACEHOLDERS.get(value, value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def dialects(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dialects")
    catalog = tmp / "models.json"
    catalog.write_text(json.dumps(docs_catalog()))
    app, services, key = inprocess_app(str(tmp), compat_wait_seconds=10, models_file=catalog,
                                       default_model="stable-diffusion-v1-5/stable-diffusion-v1-5")
    services.destinations.create(Destination(name="storage_1", tenant="inprocess", bucket="acme", endpoint_url="http://s3.invalid",
                                             credentials="unused"))
    with FakeWorker(services) as worker, TestClient(app, raise_server_exceptions=False) as client:
        yield client, services, key, worker


def _at(body, path: str):
    for part in path.split("."):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


def _subset(expected, actual, where: str = "") -> None:
    if isinstance(expected, dict):
        for k, v in expected.items():
            assert isinstance(actual, dict) and k in actual, f"{where}.{k} missing"
            _subset(v, actual[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) >= len(expected), f"{where}: {actual!r}"
        for i, v in enumerate(expected):
            _subset(v, actual[i], f"{where}.{i}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def _image_size(encoded: str) -> tuple[int, int]:
    data = base64.b64decode(encoded.split(",", 1)[1] if encoded.startswith("data:") else encoded)
    return Image.open(io.BytesIO(data)).size


def _error_text(service: str, body: dict) -> str:
    return body["detail"] if service == "alwrity" else body["error_message"]


def _check(service: str, case: dict, response, services, worker) -> None:
    expect = case["expect"]
    assert response.status_code == expect["status"], response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if expect["status"] >= 400:
        shape = {"detail"} if service == "alwrity" else {"error_code", "error_type", "error_message", "error_details"}
        assert shape <= set(body), body
    _subset(expect.get("json", {}), body)
    for path in expect.get("keys", []):
        _at(body, path)
    for path, value in expect.get("equal", {}).items():
        assert _at(body, path) == value, (path, _at(body, path))
    for path, text in expect.get("contains", {}).items():
        assert text in _at(body, path)
    for path, text in expect.get("prefix", {}).items():
        assert _at(body, path).startswith(text)
    if "count" in expect:
        assert len(_at(body, expect["count"][0])) == expect["count"][1]
    if "image" in expect:
        path, width, height = expect["image"]
        assert _image_size(_at(body, path)) == (width, height)
        assert (_at(body, path.rsplit(".", 1)[0] + ".width") if "." in path else body["width"]) == width
    if "size_fields" in expect:
        path, width, height = expect["size_fields"]
        assert (_at(body, path)["width"], _at(body, path)["height"]) == (width, height)
    if "url" in expect:
        assert _at(body, expect["url"]).startswith("http")
    if "detail" in expect:
        assert expect["detail"] in _error_text(service, body), body
    if "message" in expect:
        assert expect["message"] in body["error_message"], body
    if "error_field" in expect:
        assert expect["error_field"] in body["error_details"], body
    for name in expect.get("headers", []):
        assert name in response.headers, name
    if "stored" in expect:
        assert sum(1 for bucket, key in worker.bucket.objects if key.startswith("output_folder/")) >= expect["stored"]
    if "run" in expect or "contains_run" in expect:
        run_id = body["run_id"] if "run_id" in body else body["data"]["run_id"]
        request = services.runs.get(run_id).request
        _subset(expect.get("run", {}), request)
        for name, text in expect.get("contains_run", {}).items():
            assert text in request[name]


def _send(client, key: str, spec: dict, case: dict):
    headers = {} if case.get("anonymous") else {"Authorization": f"Bearer {key}"}
    url = spec["prefix"] + case["path"]
    if "raw" in case:
        return client.request(case["method"], url, content=case["raw"], headers=headers | {"content-type": case["content_type"]})
    if "body" in case:
        return client.request(case["method"], url, json=_substituted(case["body"]), headers=headers)
    return client.request(case["method"], url, headers=headers)


@pytest.mark.parametrize("service, case", [(name, case) for name, spec in SERVICES.items() for case in spec["cases"]],
                         ids=lambda value: value if isinstance(value, str) else value["name"][:60])
def test_documented_request(dialects, service, case):
    client, services, key, worker = dialects
    _check(service, case, _send(client, key, SERVICES[service], case), services, worker)


def test_dialect_runs_are_ordinary_runs(dialects):
    """Listed, retained, charged and announced (webhook) like any run, under the caller's key
    and tenant."""
    client, services, key, _ = dialects
    headers = {"Authorization": f"Bearer {key}"}
    hook = "https://93.184.216.34/hook"  # a public address: no DNS lookup
    claid = client.post("/compat/claid/v1/image/generate", json={
        "input": "a cake", "options": {"width": 64, "height": 64, "webhook_url": hook}}, headers=headers)
    alwrity = client.post("/compat/alwrity/api/image-studio/create", json={
        "prompt": "a cake", "width": 64, "height": 64, "webhook_url": hook}, headers=headers)
    for run_id in (claid.json()["data"]["run_id"], alwrity.json()["run_id"]):
        native = client.get(f"/v1/generations/{run_id}", headers=headers).json()
        assert native["status"] == "completed" and native["expires_at"] and native["credits_used"] is not None
        record = services.runs.get(run_id)
        assert record.tenant == "inprocess" and record.webhook.url == hook
        assert run_id in {run["run_id"] for run in client.get("/v1/generations", headers=headers).json()["data"]}


@pytest.mark.parametrize("path, body, run_id_at", [
    ("/compat/claid/v1/image/generate", {"input": "a cake"}, ("error_details", "run_id")),
    ("/compat/alwrity/api/image-studio/create", {"prompt": "a cake"}, ("run_id",)),
])
def test_the_wait_is_bounded_and_names_the_run(tmp_path, path, body, run_id_at):
    app, services, key = inprocess_app(str(tmp_path), compat_wait_seconds=0.1, default_model="tiny/model")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post(path, json=body)  # no worker: the run never ends
        assert response.status_code == 504
        run_id = response.json()
        for part in run_id_at:
            run_id = run_id[part]
        assert services.runs.get(run_id).status.value == "queued"
        assert client.get(f"/v1/generations/{run_id}").status_code == 200


def test_dialect_routes_are_tagged_in_openapi(dialects):
    client, _, _, _ = dialects
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/compat/claid/v1/image/generate"]["post"]["tags"] == ["claid"]
    alwrity = [p for p in paths if p.startswith("/compat/alwrity/")]
    assert len(alwrity) == 15 and all(op["tags"] == ["alwrity"] for p in alwrity for op in paths[p].values())


def test_a_failed_run_is_an_error_naming_it(dialects):
    client, services, key, _ = dialects
    headers = {"Authorization": f"Bearer {key}"}
    claid = client.post("/compat/claid/v1/image/generate", json={"input": "FAIL", "options": {"width": 64, "height": 64}}, headers=headers)
    assert claid.status_code == 500 and claid.json()["error_code"] == "run_failed"
    assert services.runs.get(claid.json()["error_details"]["run_id"]).status.value == "failed"
    alwrity = client.post("/compat/alwrity/api/image-studio/create", json={"prompt": "FAIL", "width": 64, "height": 64}, headers=headers)
    assert alwrity.status_code == 500 and alwrity.json()["detail"].startswith("Image generation failed: the run ended failed")
    assert services.runs.get(alwrity.json()["run_id"]).status.value == "failed"
