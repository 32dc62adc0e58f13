"""Many hosts, shown on one machine (issue 14): the API, Redis and S3 here, and two worker "hosts"
that share no filesystem (each its own working, home, temp, cache and model directories, with its
own copies of the models) and, where the machine allows, no network but a link to this one
(tests/hosts.py: a network namespace each, a veth pair with addresses only on it). One pool
each. A mixed backlog across both pools, queued before either worker is up, all renders: every
run lands on its pool's worker and completes once, each worker loads its own pool's model once
and no other, and a run of a pool nobody serves waits, accepted, while /v1/health says so."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.metrics import model_loads
from devkit.procs import start_worker
from tests.conftest import make_stack, wait_for_run
from tests.hosts import Hosts, namespaces_available

pytestmark = pytest.mark.integration

POOLS = {"alpha": "a", "beta": "b", "gamma": "c"}  # model → pool; no host serves pool c


def _catalog(directory: Path, tiny_model: str | None) -> Path:
    """The catalog of every model; with `tiny_model`, this host's own copies of them."""
    directory.mkdir(parents=True, exist_ok=True)
    models = []
    for model, pool in POOLS.items():
        if tiny_model is not None:
            shutil.copytree(tiny_model, directory / model)
        models.append({"id": model, "kind": "base", "source": f"./{model}", "pool": pool})
    path = directory / "models.json"
    path.write_text(json.dumps({"models": models}))
    return path


def _claimed(log: str) -> list[str]:
    """The run ids a worker's log says it claimed (alone, or with the rest of a render group)."""
    found = []
    for line in log.splitlines():
        message = json.loads(line).get("message", "") if line.startswith("{") else ""
        if " claimed" in message:
            found += re.findall(r"gen_[0-9a-f]+", message)
    return found


def _health(client) -> dict:
    return {pool["pool"]: pool for pool in client.get("/v1/health").json()["pools"]}


def test_two_hosts_one_pool_each_render_only_their_pools_runs(tmp_path_factory, tiny_model, redis_url, s3_endpoint):
    root = tmp_path_factory.mktemp("hosts")
    stack = make_stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint, RENDERQ_DEFAULT_MODEL="",
                       RENDERQ_MODELS_FILE=_catalog(root / "api", None))
    hosts = Hosts(root, use_namespaces=namespaces_available())
    try:
        made = [hosts.make(name) for name in ("hosta", "hostb")]
        stack.api()
        client = stack.client()
        # The backlog, before any worker: both pools, every priority, and one run nobody serves.
        bodies = [{"prompt": f"mug {i}", "model_id": model, "priority": ("high", "normal", "low")[i % 3],
                   "width": 64, "height": 64, "num_inference_steps": 2, "seed": i}
                  for i in range(12) for model in [("alpha", "beta")[i % 2]]]
        runs = [client.post("/v1/generations", json=body).json()["run_id"] for body in bodies]
        orphan = client.post("/v1/generations", json={"prompt": "x", "model_id": "gamma", "width": 64, "height": 64,
                                                      "num_inference_steps": 2})
        assert orphan.status_code == 202 and orphan.json()["status"] == "queued"
        before = _health(client)
        assert [before[p]["jobs"]["in_queue"] for p in "abc"] == [6, 6, 1]
        assert not any(before[p]["has_workers"] for p in "abc")

        def start(host, pool: str):
            env = host.env(stack.env | {"RENDERQ_MODELS_FILE": str(_catalog(host.root / "models", tiny_model))})
            return start_worker(env, stack.workdir, host.name, f"--pool={pool}", prefix=host.prefix, cwd=host.workdir)

        with ThreadPoolExecutor(2) as pool:
            stack.procs += list(pool.map(start, made, ["a", "b"]))

        for run_id in runs:
            assert wait_for_run(client, run_id, timeout=60)["status"] == "completed"
        redis = stack.redis()
        records = [redis.hgetall(f"renderq:run:{run_id}") for run_id in runs]
        loads = model_loads(redis)
        workers = {pool: {worker for (p, worker, _) in loads if p == pool} for pool in "ab"}
        # Each worker (one per pool) loaded its own pool's one model, once; nothing else.
        assert {(p, model): n for (p, _, model), n in loads.items()} == {("a", "alpha"): 1, ("b", "beta"): 1}
        assert all(len(found) == 1 for found in workers.values())
        for body, record in zip(bodies, records):
            pool = POOLS[body["model_id"]]
            assert record["pool"] == pool and record["worker"] in workers[pool]
            assert record["status"] == "completed" and record["attempt"] == "1"
        claims = {host.name: _claimed(proc.log()) for host, proc in zip(made, stack.procs[-2:])}
        for body, run_id in zip(bodies, runs):  # claimed once, on its own pool's host
            own, other = ("hosta", "hostb") if body["model_id"] == "alpha" else ("hostb", "hosta")
            assert claims[own].count(run_id) == 1 and run_id not in claims[other]
        assert int(redis.hget("renderq:metrics:runs", "completed")) == len(runs)

        after = _health(client)
        assert after["a"]["has_workers"] and after["b"]["has_workers"]
        assert after["a"]["jobs"] == after["b"]["jobs"] == {"in_queue": 0, "in_progress": 0}
        assert not after["c"]["has_workers"] and after["c"]["jobs"]["in_queue"] == 1
        assert client.get(f"/v1/generations/{orphan.json()['run_id']}").json()["status"] == "queued"
    finally:
        stack.stop()
        hosts.remove()
