"""An expired run answers 410 Gone (a problem document) while its tombstone lasts; an id that
never existed, another tenant's, or one expired longer ago answers 404. In process (fakeredis):
a record's expiry is Redis deleting its key, done here by hand."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from storage.runs import run_key
from storage.tombstones import DAY
from tests.inprocess import inprocess_app

BODY = {"prompt": "a mug", "width": 64, "height": 64, "num_inference_steps": 2}


@pytest.fixture
def inproc(tmp_path):
    app, services, key = inprocess_app(str(tmp_path))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, services


def _expired_run(client, services) -> str:
    run_id = client.post("/v1/generations", json=BODY).json()["run_id"]
    assert client.post(f"/v1/generations/{run_id}/cancel").status_code == 200
    services.runs.redis.delete(run_key(run_id))  # what Redis does at the run's expires_at
    return run_id


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}" and response.json()["status"] == status
    return response.json()


def test_an_expired_run_is_gone_on_every_route_and_an_unknown_id_is_not_found(inproc):
    client, services = inproc
    run_id = _expired_run(client, services)
    for method, path in (("GET", ""), ("POST", "/cancel"), ("POST", "/retry"), ("GET", "/events")):
        _problem(client.request(method, f"/v1/generations/{run_id}{path}"), 410, "run-expired")
        _problem(client.request(method, f"/v1/generations/gen_{'0' * 24}{path}"), 404, "not-found")


def test_another_tenants_expired_run_is_not_found(inproc):
    client, services = inproc
    run_id = _expired_run(client, services)
    _, other = services.keys.create("someone-else")
    _problem(client.get(f"/v1/generations/{run_id}", headers={"Authorization": f"Bearer {other}"}), 404, "not-found")


def test_the_tombstone_is_kept_for_its_days_then_the_id_is_not_found(inproc):
    from storage.redis_ops import run

    client, services = inproc
    run_id = _expired_run(client, services)
    tombstones = services.runs.tombstones
    expires_at = float(time.time() + services.settings.retention_seconds)
    assert run(services.runs.redis, tombstones.gone_op(run_id, now=expires_at + tombstones.keep_seconds - 60))
    assert not run(services.runs.redis, tombstones.gone_op(run_id, now=expires_at + tombstones.keep_seconds + DAY + 60))
    [key] = services.runs.redis.keys("renderq:gone:*")  # one small hash per day, expiring by itself
    assert 0 < services.runs.redis.ttl(key) <= services.settings.retention_seconds + tombstones.keep_seconds + DAY


def test_a_run_never_accepted_leaves_no_tombstone(inproc):
    client, services = inproc
    run_id = client.post("/v1/generations", json=BODY).json()["run_id"]
    services.runs.discard(run_id)  # as when the broker refused its message
    _problem(client.get(f"/v1/generations/{run_id}"), 404, "not-found")


def test_the_client_tells_an_expired_run_from_one_that_never_existed(inproc):
    from client.client import NotFound, RenderqClient, RunExpired

    client, services = inproc
    run_id = _expired_run(client, services)
    sdk = RenderqClient(http=client)
    with pytest.raises(RunExpired) as gone:
        sdk.get(run_id)
    assert gone.value.problem["status"] == 410
    with pytest.raises(NotFound):
        sdk.get("gen_" + "1" * 24)


def test_on_the_real_stack_an_expired_run_is_410_and_an_unknown_id_404(stack, api):
    """A run rendered by a worker, its record then expired in Redis (as its TTL would)."""
    from tests.conftest import wait_for_run

    run_id = api.post("/v1/generations", json=BODY).json()["run_id"]
    assert wait_for_run(api, run_id)["status"] == "completed"
    stack.redis().delete(run_key(run_id))
    _problem(api.get(f"/v1/generations/{run_id}"), 410, "run-expired")
    _problem(api.post(f"/v1/generations/{run_id}/retry"), 410, "run-expired")
    _problem(api.get(f"/v1/generations/gen_{'f' * 24}"), 404, "not-found")
