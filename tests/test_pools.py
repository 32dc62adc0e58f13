"""Worker pools, fast tier: queue names per pool and priority, which pool a model belongs to,
and what `renderq worker --pool` consumes. Nothing here starts a process."""

from __future__ import annotations

import json

import pytest

from core.queue import RENDER_QUEUES, render_queue, render_queues
from core.settings import Settings
from ops.cli import build_parser
from ops.gpu_workers import GpuListError, worker_commands, worker_queues
from storage.models_catalog import ModelCatalog


def test_the_default_pool_keeps_todays_queue_names():
    expected = {"high": "renderq.render.high", "normal": "renderq.render", "low": "renderq.render.low"}
    assert render_queues(None) == render_queues("") == render_queues("default") == RENDER_QUEUES == expected


def test_a_named_pool_has_its_own_queue_per_priority():
    assert render_queues("xl") == {
        "high": "renderq.render.xl.high", "normal": "renderq.render.xl", "low": "renderq.render.xl.low",
    }
    assert list(render_queues("xl")) == ["high", "normal", "low"]  # the order workers drain them


@pytest.mark.parametrize("value", ["high=a", "low=a", "Big=a", "x", "x=", "x=a;y=a", "x=a;x=b"])
def test_pool_settings_that_would_collide_are_refused(value):
    with pytest.raises(ValueError):
        Settings(pools=value)


def test_pool_setting_is_normalised():
    settings = Settings(pools=" xl = sdxl, flux ; small=default ")
    assert settings.pools == "xl=sdxl,flux;small=default"
    assert settings.pool_models == {"xl": ("sdxl", "flux"), "small": ("default",)}


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [
        {"id": "xl", "kind": "base", "source": "/m/xl", "pool": "big"},
        {"id": "xl-pixel", "kind": "lora", "source": "/m/lora", "base": "xl"},
        {"id": "sd15", "kind": "base", "source": "/m/sd15"},
        {"id": "x2", "kind": "upscaler", "source": "/m/x2"},
    ]}))
    return path


def test_a_model_goes_to_its_catalog_pool_and_a_lora_to_its_bases(catalog_file):
    catalog = ModelCatalog.from_settings(Settings(models_file=catalog_file, default_model="/m/default"))
    assert {model: catalog.pool_of(model) for model in catalog.entries} == {
        "default": "default", "xl": "big", "xl-pixel": "big", "sd15": "default", "x2": "default",
    }
    assert catalog.pool_of("") == "default"  # the default model
    assert catalog.pools() == ["default", "big"]
    assert [entry.id for entry in catalog.in_pool("big")] == ["xl", "xl-pixel"]


def test_the_pools_setting_overrides_the_catalog(catalog_file):
    settings = Settings(models_file=catalog_file, default_model="/m/default", pools="small=default,x2;gpu=xl")
    catalog = ModelCatalog.from_settings(settings)
    assert [catalog.pool_of(m) for m in ("default", "x2", "xl", "xl-pixel", "sd15")] == [
        "small", "small", "gpu", "gpu", "default"]
    assert catalog.pools() == ["default", "gpu", "small"]


def test_a_pool_naming_a_model_the_catalog_lacks_is_refused(catalog_file):
    with pytest.raises(ValueError, match="nope"):
        ModelCatalog.from_settings(Settings(models_file=catalog_file, default_model="/m/d", pools="p=nope"))


def test_an_unknown_priority_goes_to_the_pools_normal_queue():
    assert render_queue("xl", "urgent") == "renderq.render.xl"
    assert render_queue(None, "low") == "renderq.render.low"


def test_worker_pool_option_consumes_only_that_pools_queues():
    parser = build_parser()
    assert worker_queues(parser.parse_args(["worker", "--pool", "xl"])) == (
        "renderq.render.xl.high,renderq.render.xl,renderq.render.xl.low", True)
    assert worker_queues(parser.parse_args(["worker"]))[0] == "renderq.render.high,renderq.render,renderq.render.low"
    assert worker_queues(parser.parse_args(["worker", "--queues", "renderq.webhooks"])) == ("renderq.webhooks", False)
    with pytest.raises(GpuListError):
        worker_queues(parser.parse_args(["worker", "--pool", "high"]))
    [command] = worker_commands(parser.parse_args(["worker", "--pool", "xl", "--gpus", "0"]), environ={})
    assert "--pool=xl" in command.argv and "--queues=renderq.render.xl.high,renderq.render.xl,renderq.render.xl.low" in command.argv


# --- a pool's runs in Redis: queue indexes, positions, the reaper's re-enqueues ----------------

@pytest.fixture
def store():
    import fakeredis

    from storage.runs import RunStore

    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600)


def _queued(store, run_id: str, pool: str = "default", priority: str = "normal", created_at: float = 0.0):
    from storage.records import Priority, RunRecord

    import time

    return store.create(RunRecord(run_id=run_id, pool=pool, priority=Priority(priority), created_at=time.time() - 100 + created_at,
                                  request={"num_inference_steps": 2, "width": 64, "height": 64}))


def test_queue_position_counts_only_the_runs_of_its_own_pool(store):
    from storage.render_stats import RenderStats

    for i in range(5):
        _queued(store, f"gen_d{i}", created_at=1.0 + i)  # default pool, ahead in time
    _queued(store, "gen_x_high", pool="xl", priority="high", created_at=9.0)
    _queued(store, "gen_x1", pool="xl", created_at=10.0)
    _queued(store, "gen_x2", pool="xl", created_at=11.0)
    stats = RenderStats(step_seconds={"64x64": 0.5}, overhead=0.0)
    assert store.index.queue_position(store.get("gen_x2"), stats) == (2, 2.0)  # its pool's high run and gen_x1
    assert store.index.queue_position(store.get("gen_d4"), stats)[0] == 4
    assert store.index.pools() == ["default", "xl"]
    assert store.redis.zcard("renderq:queued:xl:normal") == 2 and store.redis.zcard("renderq:queued:normal") == 5


def test_render_speed_is_measured_per_pool(store):
    from storage.render_stats import load_stats, record_render

    request = {"num_inference_steps": 2, "width": 64, "height": 64}
    record_render(store.redis, request, {"inference_seconds": 4.0}, "xl")
    record_render(store.redis, request, {"inference_seconds": 0.2}, None)
    assert load_stats(store.redis, 1.0, "xl").seconds_per_step(request) == pytest.approx(2.0)
    assert load_stats(store.redis, 1.0).seconds_per_step(request) == pytest.approx(0.1)


def _message_for(run_id: str, attempt: int, priority: str, pool: str = "default"):
    return render_queues(pool)[priority], json.dumps({"args": [run_id, attempt]})


def test_the_reaper_puts_a_reaped_pool_run_back_at_the_head_of_its_pools_queue(store, monkeypatch):
    from storage.held_messages import HeldMessages
    from worker import reaper

    _queued(store, "gen_dead", pool="xl", priority="high")
    assert store.claim("gen_dead", 1, "w1", 3) == "claimed"
    store.redis.zadd("renderq:heartbeats", {"gen_dead": 1.0})
    store.redis.lpush("renderq.render.xl.high", "behind")
    monkeypatch.setattr(reaper, "render_message", lambda app, run_id, attempt, priority, pool: _message_for(
        run_id, attempt, priority, pool))
    assert reaper.reap_once(object(), store, Settings(heartbeat_stale_after=3), HeldMessages(store.redis, store.redis)) == [
        ("gen_dead", 2)]
    assert json.loads(store.redis.lindex("renderq.render.xl.high", -1)) == {"args": ["gen_dead", 2]}
    assert store.redis.llen("renderq.render.high") == 0


def test_a_pool_run_whose_message_was_lost_is_resent_to_its_pools_queue(store):
    from storage.held_messages import HeldMessages
    from storage.lost_messages import LostMessages

    _queued(store, "gen_lost", pool="xl")
    lost = LostMessages(HeldMessages(store.redis, store.redis))
    assert lost.resend(missing_after=3, message_for=_message_for, now=100.0) == []  # seen missing once
    assert lost.resend(missing_after=3, message_for=_message_for, now=104.0) == [("gen_lost", 1)]
    assert json.loads(store.redis.lindex("renderq.render.xl", -1)) == {"args": ["gen_lost", 1]}
    assert store.redis.llen("renderq.render") == 0


# --- the API: routing at submit, /v1/health, per-pool positions (in process, no worker) --------

@pytest.fixture
def pooled_api(tmp_path):
    from fastapi.testclient import TestClient

    from tests.inprocess import inprocess_app

    catalog = tmp_path / "models.json"
    catalog.write_text(json.dumps({"models": [
        {"id": "alpha", "kind": "base", "source": "/m/alpha", "pool": "a"},
        {"id": "beta", "kind": "base", "source": "/m/beta"},
    ]}))
    app, services, key = inprocess_app(str(tmp_path / "images"), models_file=catalog, default_model="/m/default",
                                       pools="b=beta")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, services


def _submit(client, model_id: str | None = None) -> dict:
    body = {"prompt": "a mug", "width": 64, "height": 64, "num_inference_steps": 2} | ({"model_id": model_id} if model_id else {})
    response = client.post("/v1/generations", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_run_is_recorded_for_its_models_pool_and_counted_only_in_its_pools_queue(pooled_api):
    client, services = pooled_api
    runs = [_submit(client, "alpha") for _ in range(3)] + [_submit(client, "beta"), _submit(client)]
    assert [services.runs.get(run["run_id"]).pool for run in runs] == ["a", "a", "a", "b", "default"]
    assert [run["queue_position"] for run in runs] == [0, 1, 2, 0, 0]


def test_health_says_per_pool_what_is_queued_and_that_a_pool_has_no_worker(pooled_api):
    from core.metrics import worker_seen

    client, services = pooled_api
    _submit(client, "alpha")
    _submit(client, "alpha")
    worker_seen(services.runs.redis, "host-a:1", "a", listed_only=True)  # its render process still warming
    worker_seen(services.runs.redis, "host-b:1", "b")  # what a warm render process does for its worker
    worker_seen(services.runs.redis, "host-b:1", "b", listed_only=True)  # then its reaper, every tick
    worker_seen(services.runs.redis, "webhooks:1", None)  # a webhook worker: no pool's
    health = client.get("/v1/health").json()
    pools = {pool["pool"]: pool for pool in health["pools"]}
    assert list(pools) == ["default", "a", "b"] and health["status"] == "degraded"
    assert pools["a"]["jobs"] == {"in_queue": 2, "in_progress": 0} and pools["a"]["has_workers"] is False
    assert pools["a"]["models"] == ["alpha"] and pools["a"]["queues"]["normal"] == "renderq.render.a"
    assert 0 <= pools["a"]["oldest_queued_seconds"] < 30
    assert pools["b"]["workers"] == {"idle": 1, "busy": 0} and pools["b"]["has_workers"] is True
    assert pools["default"]["has_workers"] is False and pools["default"]["oldest_queued_seconds"] is None


def test_health_needs_a_key_unless_the_setting_makes_it_public(pooled_api):
    client, services = pooled_api
    assert client.get("/v1/health", headers={"Authorization": ""}).status_code == 401
    services.settings.health_public = True
    assert client.get("/v1/health", headers={"Authorization": ""}).status_code == 200


# --- the benchmark's pool section (bench/pools.py, bench/report_pools.py), from synthetic figures

def test_the_pool_benchmark_counts_loads_per_worker_and_reports_them():
    from bench.pools import _loads, _per_pool
    from bench.report_pools import pools_rows, pools_section

    loads = _loads({("a", "vm:11", "a1"): 1, ("a", "vm:11", "a2"): 1, ("b", "vm:12", "b1"): 1, ("b", "vm:12", "b2"): 2},
                   {11: "a1-worker"})
    assert loads["a1-worker"] == {"pool": "a", "models": {"a1": 1, "a2": 1}, "one_per_model": True}
    assert loads["vm:12"]["one_per_model"] is False  # b2 loaded twice
    jobs = [{"model_id": m} for m in ("a1", "b1", "a2", "b2")]
    runs = [{"status": "completed", "pool": p, "started_at": 10.0, "completed_at": 10.0 + i, "timings": {"batch_size": 2}}
            for i, p in enumerate(("a", "b", "a", "b"), start=1)]
    pools = _per_pool(jobs, runs)
    assert pools["a"] == {"runs": 2, "seconds": 3.0, "images_per_second": 2 / 3.0, "batch_size_mean": 2.0, "wrong_pool": 0}
    results = {"pools": {"jobs_per_pool": 2, "pools": pools, "loads": loads, "burst": {
        "runs": 200, "submit_seconds": 0.2, "to_ready": 3.0, "model_load": 1.5, "to_first_started": 4.0,
        "to_first_completed": 4.5, "queued_to_first_completed": 4.6, "drain_images_per_second": 30.0, "completed": 200}}}
    rows = pools_rows(results)
    assert rows[1][3] is False and "4.50 s" in rows[2][2]
    text = "\n".join(pools_section(results))
    assert "## 12. Worker pools" in text and "| a1-worker | a | a1 ×1, a2 ×1 | yes |" in text
    assert pools_rows({}) == [] and pools_section({}) == []


def test_render_groups_are_per_pool_and_the_default_pools_ids_stay():
    from storage.render_groups import group_id

    key = (64, 64, 2, 7.5)
    assert group_id("text-to-image", "m", {}, key) == group_id("text-to-image", "m", {}, key, "default")
    assert group_id("text-to-image", "m", {}, key, "xl") != group_id("text-to-image", "m", {}, key)


def test_metrics_have_each_pools_queue_runs_workers_and_model_loads(pooled_api):
    from core.metrics import count_model_load, worker_seen

    client, services = pooled_api
    _submit(client, "alpha")
    worker_seen(services.runs.redis, "host-a:1", "a")
    count_model_load(services.runs.redis, "a", "host-a:2", "alpha")
    text = client.get("/metrics").text
    for line in ('renderq_pool_runs_queued{pool="a"} 1.0', 'renderq_pool_runs_queued{pool="b"} 0.0',
                 'renderq_pool_workers{pool="a",state="idle"} 1.0', 'renderq_pool_runs_running{pool="default"} 0.0',
                 'renderq_model_loads_total{model="alpha",pool="a",worker="host-a:2"} 1.0',
                 'renderq_queue_depth{queue="renderq.render.b.high"} 0.0'):
        assert line in text, line
    assert 'renderq_pool_oldest_queued_seconds{pool="a"}' in text
