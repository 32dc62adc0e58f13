"""The reference APIs' dialects (api/compat/<service>/), case by case: every request example of
each service's document and every field it documents, sent as written (only the host changed,
sizes and steps shrunk) to its dialect route on the in-process stack, and the answer checked
against what the document promises (status, fields, image count and size, errors in the
service's shape), and the run it created against what the field asks of renderq.

The cases are data, one JSON Lines file per service in tests/compat_cases/ (one case a line): method, path
under the dialect's prefix, `json` / `form` / `files` / `raw` / `headers`, and `expect`. Values
"$asset:NAME" become the id of an uploaded fixture image. The in-process worker
(tests/compat_worker.py) ends each run as a worker would, without a model (a prompt with "FAIL"
fails). A case marked `deviation` is one renderq refuses by design, per field, in the service's
error shape (the document promises more than renderq serves); every other case is served as the
document promises. tests/test_compat_claid_alwrity.py does the same for Claid and ALwrity."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.compat_worker import FakeWorker
from tests.images import decode, encode, noise
from tests.inprocess import inprocess_app

CASES = Path(__file__).parent / "compat_cases"
PREFIXES = {"imagineo": "/compat/imagineo", "limewire": "/compat/limewire", "livepeer": "/compat/livepeer"}
CATALOG = {"models": [
    {"id": "tiny-lora", "kind": "lora", "source": "loras/tiny", "name": "Tiny LoRA", "description": "a LoRA"},
    {"id": "sd-tiny", "kind": "base", "source": "hf-internal-testing/tiny-stable-diffusion-pipe"},
    {"id": "x2", "kind": "upscaler", "source": "caidas/swin2SR-classical-sr-x2-64"},
    {"id": "ip2p", "kind": "instruct-pix2pix", "source": "timbrooks/instruct-pix2pix"},
]}


def _alpha(size: int, transparent: bool = True) -> bytes:
    image = noise(size, size, mode="RGBA")
    image.putalpha(255)
    if transparent:
        image.paste((0, 0, 0, 0), (0, 0, size // 2, size))
    return encode(image)


def _white_square() -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    image.paste((255, 255, 255, 255), (16, 16, 48, 48))
    return encode(image)


FIXTURES = {
    "rgb64": lambda: encode(noise(64, 64)), "rgb64x96": lambda: encode(noise(64, 96)), "alpha64": lambda: _alpha(64),
    "opaque64": lambda: _alpha(64, transparent=False), "white_square64": _white_square, "rgb704": lambda: encode(noise(704, 704)),
    "text": lambda: b"not an image",
}


def load_cases(service: str) -> list[dict]:
    lines = (CASES / f"{service}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.lstrip().startswith("//")]


ALL_CASES = [pytest.param(service, case, id=f"{service}:{case['name']}") for service in PREFIXES if (CASES / f"{service}.jsonl").exists() for case in load_cases(service)]


@pytest.fixture(scope="module")
def dialects(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    catalog = root / "models.json"
    catalog.write_text(json.dumps(CATALOG))
    app, services, key = inprocess_app(str(root / "images"), models_file=str(catalog), compat_wait_seconds=10,
                                       default_model="tiny/model")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client, FakeWorker(services):
        yield client, services


def _substitute(value, client):
    if isinstance(value, str) and value.startswith("$asset:"):
        response = client.post("/v1/assets", content=FIXTURES[value[7:]](), headers={"content-type": "image/png"})
        assert response.status_code == 201, response.text
        return response.json()["asset_id"]
    if isinstance(value, dict):
        return {k: _substitute(v, client) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, client) for v in value]
    return value


def send(client, service: str, case: dict):
    url = PREFIXES[service] + case["path"]
    headers = dict(case.get("headers", {}))
    kwargs: dict = {"headers": headers}
    if "json" in case:
        kwargs["json"] = _substitute(case["json"], client)
    if "form" in case or "files" in case:  # multipart, as LimeWire's and Livepeer's clients send forms
        form = _substitute(case.get("form", {}), client)
        parts = [(k, (None, v if isinstance(v, str) else json.dumps(v))) for k, v in form.items()]
        parts += [(part, (f"{name}.png", FIXTURES[name](), "image/png")) for part, name in case.get("files", {}).items()]
        kwargs["files"] = parts
    if "raw" in case:
        kwargs["content"] = FIXTURES[case["raw"]]()
    return client.request(case.get("method", "POST"), url, **kwargs)


def subset(expected, actual, where: str = "") -> None:
    if isinstance(expected, dict) and isinstance(actual, list):  # {"0": …}: the list's items by index
        for index, value in expected.items():
            subset(value, actual[int(index)], f"{where}.{index}")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {actual!r}"
            subset(value, actual[key], f"{where}.{key}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def at(body, path: str):
    for part in path.split(".") if path else ():
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


def check_images(client, body: dict, spec: dict) -> None:
    items = at(body, spec["at"])
    assert len(items) == spec["count"], items
    for item in items:
        url = item if isinstance(item, str) else item[spec.get("url", "url")]
        parts = urlsplit(url)
        fetched = client.get(parts.path + ("?" + parts.query if parts.query else ""))
        assert fetched.status_code == 200, (url, fetched.status_code)
        if "size" in spec:
            assert decode(fetched.content).size == tuple(spec["size"]), url
        for key, value in spec.get("each", {}).items():
            assert item[key] == value, (key, item)


def check_run(services, body: dict, spec: dict) -> None:
    run_id = at(body, spec.get("id_at", "run_id"))
    record = services.runs.get(run_id)
    assert record is not None, run_id
    if "operation" in spec:
        assert record.operation == spec["operation"]
    if "model_id" in spec:
        assert record.model_id == spec["model_id"]
    if "loras" in spec:
        assert record.loras == spec["loras"]
    subset(spec.get("request", {}), record.request, "run.request")
    subset(spec.get("record", {}), record.model_dump(mode="json"), "run")


def poll(client, service: str, spec: dict, body: dict) -> dict:
    url = PREFIXES[service] + spec["path"].format(**body)
    deadline = time.monotonic() + 10
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return answer.json()
        time.sleep(0.02)


@pytest.mark.parametrize("service, case", ALL_CASES)
def test_case_is_served_as_documented(dialects, service, case):
    client, services = dialects
    response = send(client, service, case)
    expect = case["expect"]
    assert response.status_code == expect["status"], response.text[:600]
    if "deviation" in case:  # refused by design: said so, never served silently otherwise
        assert response.status_code >= 400
    content_type = response.headers["content-type"]
    assert content_type.startswith(expect.get("content_type", "application/json")), content_type
    if "png_size" in expect:
        assert decode(response.content).size == tuple(expect["png_size"])
        return
    body = response.json()
    for key in expect.get("keys", []):
        assert key in body, (key, body)
    subset(expect.get("json", {}), body, "body")
    for name, value in expect.get("headers", {}).items():
        assert response.headers.get(name) == value, (name, response.headers)
    for name in expect.get("header_names", []):
        assert name in response.headers, (name, response.headers)
    if "images" in expect:
        check_images(client, body, expect["images"])
    if "run" in expect:
        check_run(services, body, expect["run"])
    if "poll" in expect:
        final = poll(client, service, expect["poll"], body)
        subset(expect["poll"].get("json", {}), final, "poll")
        if "images" in expect["poll"]:
            check_images(client, final, expect["poll"]["images"])
