"""API keys and tenants, rate limits, the active-run cap, Idempotency-Key, size limits and
request ids, against the real API and worker of the session stack."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.conftest import wait_for_run
from devkit.procs import renderq_command

SMALL = {"prompt": "a red cube", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 1}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status and body["title"]
    return body


def keys_cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(renderq_command("keys", *args), env=stack.env, capture_output=True, text=True, timeout=60)


def test_v1_needs_a_valid_key_either_header_works(stack):
    with stack.client(key="") as anonymous:
        for response in (anonymous.get("/v1/generations/gen_x"), anonymous.post("/v1/generations", json=SMALL)):
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert_problem(anonymous.get("/v1/generations/gen_x", headers={"X-API-Key": "rq_nope_nope"}), 401, "unauthorized")
        assert_problem(anonymous.get("/v1/generations/gen_x", headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401, "unauthorized")
        # Health and problem pages stay open.
        assert anonymous.get("/healthz").status_code == 200
        run = anonymous.post("/v1/generations", json=SMALL, headers={"X-API-Key": stack.key})
        assert run.status_code == 202
        assert anonymous.get(f"/v1/generations/{run.json()['run_id']}", headers={"Authorization": f"Bearer {stack.key}"}).status_code == 200


def test_another_tenant_gets_404_exactly_like_an_unknown_run(stack, api):
    run_id = api.post("/v1/generations", json=SMALL).json()["run_id"]
    with stack.client(key=stack.create_key("other-tenant")) as other:
        foreign = other.get(f"/v1/generations/{run_id}")
        missing = other.get("/v1/generations/gen_000000000000000000000000")
    body = assert_problem(foreign, 404, "not-found")
    unknown = assert_problem(missing, 404, "not-found")
    assert body["detail"].replace(run_id, "ID") == unknown["detail"].replace("gen_000000000000000000000000", "ID")
    # A second key of the same tenant sees it.
    with stack.client(key=stack.create_key("tests")) as colleague:
        assert colleague.get(f"/v1/generations/{run_id}").status_code == 200


def test_keys_cli_creates_lists_and_revokes_and_stores_only_a_hash(stack):
    created = keys_cli(stack, "create", "--tenant", "cli-tenant", "--name", "ci")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    key = info["key"]
    assert key.startswith("rq_") and len(key) > 40 and info["tenant"] == "cli-tenant"
    with stack.client(key=key) as client:
        assert client.post("/v1/generations", json=SMALL).status_code == 202

    listed = [json.loads(line) for line in keys_cli(stack, "list").stdout.splitlines()]
    mine = next(row for row in listed if row["key_id"] == info["key_id"])
    assert mine["active"] and "key" not in mine
    # Nowhere in Redis is the key itself: only its SHA-256.
    redis = stack.redis()
    for name in redis.scan_iter("renderq:apikey*"):
        values = redis.hgetall(name) if redis.type(name) == "hash" else {"": redis.get(name)}
        assert not any(key in f"{field}{value}" for field, value in values.items())

    revoked = keys_cli(stack, "revoke", info["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    with stack.client(key=key) as client:
        assert_problem(client.get("/v1/generations/gen_x"), 401, "unauthorized")
    assert keys_cli(stack, "revoke", info["key_id"]).returncode == 1


def test_api_refuses_to_start_with_no_keys_unless_auth_is_disabled(stack):
    env = stack.env | {"RENDERQ_REDIS_URL": stack.env["RENDERQ_REDIS_URL"].rsplit("/", 1)[0] + "/15"}
    refused = subprocess.run(renderq_command("api", "--port", "1"), env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to start: no API keys" in refused.stderr


def test_rate_limit_headers_count_down_then_429_with_retry_after(stack):
    with stack.client(key=stack.create_key("tests", rate_limit="3/minute")) as client:
        responses = [client.get("/v1/generations/gen_x") for _ in range(4)]
    assert [r.status_code for r in responses] == [404, 404, 404, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "3" for r in responses)
    now = time.time()
    assert all(now < int(r.headers["x-ratelimit-reset"]) <= now + 61 for r in responses), [(r.headers["x-ratelimit-reset"], now) for r in responses]
    assert_problem(responses[-1], 429, "rate-limited")
    assert 1 <= int(responses[-1].headers["retry-after"]) <= 60


def test_cap_on_active_runs_per_key_frees_as_runs_finish(stack):
    slow = SMALL | {"width": 128, "height": 128, "num_inference_steps": 30}
    with stack.client(key=stack.create_key("tests", max_active_runs=2)) as client:
        first, second = (client.post("/v1/generations", json=slow) for _ in range(2))
        assert first.status_code == second.status_code == 202
        body = assert_problem(client.post("/v1/generations", json=slow), 429, "too-many-active-runs")
        assert body["max_active_runs"] == 2
        for run in (first, second):
            assert wait_for_run(client, run.json()["run_id"])["status"] == "completed"
        assert client.post("/v1/generations", json=SMALL).status_code == 202


def test_idempotency_key_same_body_same_run_other_body_422(stack, api):
    key = {"Idempotency-Key": f"order-{time.time_ns()}"}
    first = api.post("/v1/generations", json=SMALL, headers=key)
    # Same JSON with other key order and spacing is the same request.
    again = api.post("/v1/generations", content=json.dumps(dict(reversed(SMALL.items())), indent=2), headers=key | {"content-type": "application/json"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and again.headers["location"] == first.headers["location"]
    assert_problem(api.post("/v1/generations", json=SMALL | {"seed": 2}, headers=key), 422, "idempotency-key-reused")
    # Another tenant's identical key is its own.
    with stack.client(key=stack.create_key("tenant-b")) as other:
        theirs = other.post("/v1/generations", json=SMALL, headers=key)
    assert theirs.status_code == 202 and theirs.json()["run_id"] != first.json()["run_id"]
    ttl = stack.redis().ttl(next(stack.redis().scan_iter("renderq:idem:*")))
    assert 24 * 3600 - 60 < ttl <= 24 * 3600


def test_a_refused_request_does_not_burn_its_idempotency_key(api):
    key = {"Idempotency-Key": f"fix-{time.time_ns()}"}
    assert api.post("/v1/generations", json=SMALL | {"width": 65}, headers=key).status_code == 422
    assert api.post("/v1/generations", json=SMALL, headers=key).status_code == 202


def test_an_oversized_streamed_body_is_cut_off_with_413(api):
    """Chunked, so no Content-Length to check: the API counts bytes as they arrive and stops
    at the cap (the declared-length case is in tests/test_bad_input.py)."""
    from api.inputs import body_limit
    from core.settings import Settings

    limit = body_limit(Settings())
    chunk = b"a" * 2**20

    def chunks():
        yield b'{"prompt": "'
        for _ in range(limit // len(chunk) + 1):
            yield chunk
        yield b'"}'

    streamed = api.post("/v1/generations", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413, "payload-too-large")


def test_request_id_is_returned_and_reaches_the_worker_log_as_json(stack, api):
    generated = api.get("/healthz").headers["x-request-id"]
    assert len(generated) >= 16 and generated != api.get("/healthz").headers["x-request-id"]
    assert api.get("/v1/generations/gen_x").headers["x-request-id"]
    # A hostile id is replaced, not echoed.
    assert api.get("/healthz", headers={"X-Request-ID": "bad\tid<script>"}).headers["x-request-id"] != "bad\tid<script>"

    request_id = f"req-{time.time_ns()}"
    response = api.post("/v1/generations", json=SMALL, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    run_id = response.json()["run_id"]
    wait_for_run(api, run_id)
    worker_log = next(p for p in stack.procs if "worker" in p.log_path.name)
    lines = [json.loads(line) for line in worker_log.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("run_id") == run_id]
    assert mine and all(line["request_id"] == request_id for line in mine)
    assert any("completed" in line["message"] for line in mine)
    # From the Celery message headers (logged before the run record is read).
    assert any(line["message"].endswith("received") for line in mine)
    api_log = next(p for p in stack.procs if p.log_path.name.startswith("api-"))
    access = [json.loads(line) for line in api_log.log().splitlines() if request_id in line]
    assert any(line["path"] == "/v1/generations" and line["status"] == 202 and line["tenant"] == "tests" for line in access)


def test_other_tenants_runs_batches_and_assets_do_not_exist_on_any_route(stack, api):
    """Isolation is in the stores (core/tenancy.py), so every route gets it: read, list,
    cancel, retry, events, batches, assets, and assets given as inputs."""
    mine = api.post("/v1/generations", json=SMALL | {"num_inference_steps": 30, "width": 128, "height": 128}).json()["run_id"]
    batch = api.post("/v1/batches", json={"requests": [SMALL, SMALL | {"seed": 2}]})
    assert batch.status_code == 202, batch.text
    batch_id = batch.json()["batch_id"]
    asset_id = api.post("/v1/assets", content=_png(), headers={"content-type": "image/png"}).json()["asset_id"]
    with stack.client(key=stack.create_key("intruder")) as intruder:
        for response in (
            intruder.get(f"/v1/generations/{mine}"),
            intruder.post(f"/v1/generations/{mine}/cancel"),
            intruder.post(f"/v1/generations/{mine}/retry"),
            intruder.get(f"/v1/generations/{mine}/events"),
            intruder.get(f"/v1/batches/{batch_id}"),
            intruder.get(f"/v1/assets/{asset_id}"),
        ):
            assert_problem(response, 404, "not-found")
        listed = intruder.get("/v1/generations", params={"limit": 100}).json()["data"]
        assert mine not in {run["run_id"] for run in listed}
        assert_problem(intruder.post("/v1/upscale", json={"image_asset_id": asset_id, "mode": "fast", "upscale_factor": 2}), 422, "unknown-asset")
    # The owner still has all of it, and the run was not canceled by the intruder.
    assert api.get(f"/v1/generations/{mine}").json()["status"] in ("queued", "running", "completed")
    assert mine in {run["run_id"] for run in api.get("/v1/generations", params={"limit": 100}).json()["data"]}
    assert api.get(f"/v1/batches/{batch_id}").status_code == 200
    assert api.get(f"/v1/assets/{asset_id}").status_code == 200
    wait_for_run(api, mine)


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(buffer, "PNG")
    return buffer.getvalue()
