"""GET /v1/generations reads the caller's own index: a tenant's first page is its own newest
runs however many runs another tenant holds, and the Redis work of a page does not grow with
them (commands and keys counted). Fast tier: the API in process over fakeredis."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
import redis
from fastapi.testclient import TestClient

from core import tenancy
from storage.records import RunRecord, RunStatus
from storage.run_index import LEGACY_INDEX_ALL, QUEUED, tenant_index
from tests.inprocess import inprocess_app

SMALL = {"prompt": "a kite", "width": 64, "height": 64, "num_inference_steps": 2}


@pytest.fixture
def tenants(tmp_path):
    app, services, _ = inprocess_app(str(tmp_path))
    keys = {tenant: services.keys.create(tenant)[1] for tenant in ("big", "small")}
    with TestClient(app) as client:
        yield client, services, keys


def headers(keys, tenant: str) -> dict:
    return {"Authorization": f"Bearer {keys[tenant]}"}


def submit_batch(client, keys, tenant: str, count: int) -> None:
    for start in range(0, count, 1000):
        requests = [SMALL | {"seed": i} for i in range(start, min(count, start + 1000))]
        response = client.post("/v1/batches", json=requests, headers=headers(keys, tenant))
        assert response.status_code == 202, response.text


@contextmanager
def counting(services):
    """Every command sent to (fake)Redis while inside: (command, key). The estimate's inputs
    (read at most once a second per process) are read afresh, so that two counts compare."""
    services.estimates._stats, services.estimates._running = {}, {}
    sent: list[tuple[str, str]] = []
    execute, pipeline_execute = redis.Redis.execute_command, redis.client.Pipeline.execute

    def execute_command(self, *args, **options):
        sent.append((str(args[0]).upper(), str(args[1]) if len(args) > 1 else ""))
        return execute(self, *args, **options)

    def pipeline(self, raise_on_error=True):
        sent.extend((str(c[0][0]).upper(), str(c[0][1]) if len(c[0]) > 1 else "") for c in self.command_stack)
        return pipeline_execute(self, raise_on_error)

    patch = pytest.MonkeyPatch()
    patch.setattr(redis.Redis, "execute_command", execute_command)
    patch.setattr(redis.client.Pipeline, "execute", pipeline)
    try:
        yield sent
    finally:
        patch.undo()


def test_a_small_tenants_first_page_is_its_own_newest_runs_whatever_a_big_tenant_holds(tenants):
    client, services, keys = tenants
    small = [client.post("/v1/generations", json=SMALL | {"seed": i}, headers=headers(keys, "small")).json()["run_id"]
             for i in range(3)]
    submit_batch(client, keys, "big", 200)

    with counting(services) as before:
        page = client.get("/v1/generations", params={"limit": 20}, headers=headers(keys, "small")).json()
    assert [run["run_id"] for run in page["data"]] == small[::-1] and page["next_cursor"] is None

    submit_batch(client, keys, "big", 1800)  # 2,000 of the big tenant's runs, all newer than the small one's
    with counting(services) as after:
        again = client.get("/v1/generations", params={"limit": 20}, headers=headers(keys, "small")).json()
    assert [run["run_id"] for run in again["data"]] == small[::-1]
    print(f"\nlisting of the small tenant: {len(before)} Redis commands beside 200 runs of the big one, "
          f"{len(after)} beside 2,000")
    assert sorted(after) == sorted(before)  # the same commands on the same keys
    big_runs = set(services.runs.redis.zrange(tenant_index("big"), 0, -1))
    assert len(big_runs) == 2000 and not big_runs & {key.rsplit(":", 1)[-1] for _, key in after}

    big = client.get("/v1/generations", params={"limit": 100}, headers=headers(keys, "big")).json()
    assert len(big["data"]) == 100 and all(run["run_id"] in big_runs for run in big["data"])
    assert client.get("/v1/generations", params={"status": "queued", "limit": 5}, headers=headers(keys, "small")).json()["data"][0]["run_id"] == small[-1]


def test_cursors_stay_put_while_runs_are_added_and_time_ranges_and_statuses_filter(tenants):
    client, services, keys = tenants
    own = headers(keys, "small")
    ids = [client.post("/v1/generations", json=SMALL | {"seed": i}, headers=own).json()["run_id"] for i in range(5)]
    first = client.get("/v1/generations", params={"limit": 2}, headers=own).json()
    assert [run["run_id"] for run in first["data"]] == [ids[4], ids[3]]
    newer = [client.post("/v1/generations", json=SMALL | {"seed": 10 + i}, headers=own).json()["run_id"] for i in range(3)]
    submit_batch(client, keys, "big", 50)
    second = client.get("/v1/generations", params={"limit": 2, "cursor": first["next_cursor"]}, headers=own).json()
    assert [run["run_id"] for run in second["data"]] == [ids[2], ids[1]]
    third = client.get("/v1/generations", params={"limit": 2, "cursor": second["next_cursor"]}, headers=own).json()
    assert [run["run_id"] for run in third["data"]] == [ids[0]] and third["next_cursor"] is None

    created = {run_id: services.runs.get(run_id).created_at for run_id in ids + newer}
    between = lambda a, b: datetime.fromtimestamp((created[a] + created[b]) / 2, tz=timezone.utc).isoformat()  # noqa: E731
    window = {"created_after": between(ids[0], ids[1]), "created_before": between(ids[3], ids[4])}
    ranged = client.get("/v1/generations", params=window, headers=own).json()
    assert [run["run_id"] for run in ranged["data"]] == [ids[3], ids[2], ids[1]]

    client.post(f"/v1/generations/{ids[2]}/cancel", headers=own)
    canceled = client.get("/v1/generations", params={"status": "canceled"}, headers=own).json()
    assert [run["run_id"] for run in canceled["data"]] == [ids[2]]
    assert client.get("/v1/generations", params={"status": "canceled"}, headers=headers(keys, "big")).json()["data"] == []


def test_a_batch_listing_shows_only_the_callers_batch(tenants):
    client, services, keys = tenants
    batch = client.post("/v1/batches", json=[SMALL | {"seed": i} for i in range(3)], headers=headers(keys, "big")).json()
    listed = client.get("/v1/generations", params={"batch_id": batch["batch_id"]}, headers=headers(keys, "big")).json()
    assert len(listed["data"]) == 3
    other = client.get("/v1/generations", params={"batch_id": batch["batch_id"]}, headers=headers(keys, "small")).json()
    assert other["data"] == []


def test_expired_runs_leave_every_index(tenants):
    client, services, keys = tenants
    runs, retention = services.runs, services.runs.retention_seconds
    long_ago = time.time() - retention - 60
    token = tenancy.current_tenant.set("small")
    try:
        runs.create(RunRecord(run_id="gen_old", created_at=long_ago, request=dict(SMALL)))
    finally:
        tenancy.current_tenant.reset(token)
    assert runs.redis.zscore(tenant_index("small"), "gen_old") is not None
    assert runs.redis.zscore(QUEUED + "normal", "gen_old") is not None
    runs.redis.delete("renderq:run:gen_old")  # what its TTL does

    own = headers(keys, "small")
    assert client.get("/v1/generations", headers=own).json()["data"] == []  # never read: older than the retention
    client.post("/v1/generations", json=SMALL, headers=own)  # the next write of the index prunes it
    assert runs.redis.zscore(tenant_index("small"), "gen_old") is None
    assert runs.redis.ttl(tenant_index("small")) > retention - 60  # the index itself expires with its newest run

    assert runs.index.prune_expired() == 1  # the reaper's upkeep: out of the queue indexes too
    assert runs.redis.zscore(QUEUED + "normal", "gen_old") is None
    assert runs.redis.hget("renderq:queued:shape", "gen_old") is None


def test_the_legacy_global_index_moves_into_the_tenants_indexes(tenants):
    client, services, keys = tenants
    runs = services.runs
    token = tenancy.current_tenant.set("small")
    try:
        runs.create(RunRecord(run_id="gen_before", request=dict(SMALL)))
    finally:
        tenancy.current_tenant.reset(token)
    runs.redis.zrem(tenant_index("small"), "gen_before")  # written by a version that kept one global index
    runs.redis.delete(tenant_index("small"))
    runs.redis.zadd(LEGACY_INDEX_ALL, {"gen_before": runs.get("gen_before").created_at, "gen_gone": time.time()})
    runs.index.prune_expired()
    assert runs.redis.exists(LEGACY_INDEX_ALL) == 0
    assert runs.redis.zscore(tenant_index("small"), "gen_before") is not None and runs.redis.ttl(tenant_index("small")) > 0
    assert [r["run_id"] for r in client.get("/v1/generations", headers=headers(keys, "small")).json()["data"]] == ["gen_before"]
    assert runs.get("gen_before").status == RunStatus.queued


def test_a_cursor_this_api_did_not_write_is_a_422(tenants):
    import base64

    client, _, keys = tenants
    for raw in ("nan|gen_x", "garbage"):
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        response = client.get("/v1/generations", params={"cursor": cursor}, headers=headers(keys, "small"))
        assert response.status_code == 422 and response.json()["type"] == "/problems/validation-error"
