"""Bad input gets a clear problem+json (RFC 9457) answer, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.unit_services import unit_services

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(unit_services(tmp_path)), raise_server_exceptions=False) as client:
        yield client


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= set(body), body
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    assert "Traceback" not in response.text
    return body


def post(client, body=None, **kwargs):
    return client.post("/v1/generations", json=body, **kwargs)


def test_a_valid_request_is_accepted_with_its_seed_fixed(client):
    response = post(client, {"prompt": "a mug", "width": 64, "height": 64})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued" and isinstance(run["request"]["seed"], int)
    assert client.get(response.headers["location"]).json()["run_id"] == run["run_id"]


def test_over_long_prompt_is_a_validation_problem_naming_the_field(client):
    body = assert_problem(post(client, {"prompt": "x" * 2001}), 422, "validation-error")
    assert body["errors"][0]["field"] == "prompt"
    assert "2000" in body["errors"][0]["message"]


def test_empty_prompt_is_rejected(client):
    assert_problem(post(client, {"prompt": ""}), 422, "validation-error")


@pytest.mark.parametrize("field,value", [("width", 65), ("height", 100), ("width", 32), ("height", 4096)])
def test_sizes_must_be_bounded_multiples_of_8(client, field, value):
    body = assert_problem(post(client, {"prompt": "a", field: value}), 422, "validation-error")
    assert body["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": 42},
        {"prompt": "a", "width": "wide"},
        {"prompt": "a", "num_images": 5},
        {"prompt": "a", "seed": -1},
        {"prompt": "a", "seed": 2**40},
        {"prompt": "a", "guidance_scale": [1]},
        {"prompt": "a", "num_inference_steps": 10**12},
        {"prompt": "a", "unknown_field": 1},
        {"prompt": "a", "aspect_ratio": "5:4"},
        {"prompt": "a", "aspect_ratio": "16:9", "width": 512},
        ["not", "an", "object"],
    ],
)
def test_wrong_types_and_ranges_are_validation_problems(client, body):
    assert_problem(post(client, body), 422, "validation-error")


def test_malformed_json_is_a_400_problem(client):
    response = client.post("/v1/generations", content=b'{"prompt": "a",', headers={"content-type": "application/json"})
    assert_problem(response, 400, "malformed-request")


def test_unknown_run_is_a_404_problem(client):
    body = assert_problem(client.get("/v1/generations/gen_000000000000000000000000"), 404, "not-found")
    assert body["instance"] == "/v1/generations/gen_000000000000000000000000"


def test_unknown_route_and_wrong_method_are_problems(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "not-found")
    assert_problem(client.delete("/v1/generations"), 405, "method-not-allowed")


def test_aspect_ratio_sets_width_and_height(client):
    run = post(client, {"prompt": "a", "aspect_ratio": "16:9"}).json()
    assert (run["request"]["width"], run["request"]["height"]) == (680, 384)
    assert "aspect_ratio" not in run["request"]


def test_problem_types_are_documented_at_their_type_uri(client):
    body = assert_problem(post(client, {"prompt": ""}), 422, "validation-error")
    page = client.get(body["type"])
    assert page.status_code == 200 and page.json()["title"] == body["title"]


def test_an_unexpected_error_is_a_500_problem_without_a_traceback(tmp_path):
    services = unit_services(tmp_path)

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    services.runs.create = broken
    services.runs.create_many_op = broken  # what the async submit route writes with
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        response = post(client, {"prompt": "a"})
    body = assert_problem(response, 500, "internal-error")
    assert "secret internals" not in response.text and "RuntimeError" not in body["detail"]


def test_redis_down_is_a_503_problem(tmp_path):
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from storage.runs import RunStore

    services = unit_services(tmp_path)
    # No retries: redis-py's default three, with backoff, made each refused connection take 4 s.
    down = redis_lib.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    services.runs = RunStore(down, 3600)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        response = client.get("/v1/generations/gen_x")
        ready = client.get("/readyz")
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"]
    assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("down")


def test_openapi_documents_the_limits(client):
    schema = client.get("/openapi.json").json()
    fields = schema["components"]["schemas"]["GenerationCreate"]["properties"]
    assert fields["prompt"]["maxLength"] == 2000
    assert fields["width"]["multipleOf"] == 8 and fields["width"]["maximum"] == 2048
    assert fields["num_images"]["maximum"] == 4
    assert client.get("/docs").status_code == 200
