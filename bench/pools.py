"""Worker pools (issue 14): two pools of two workers each drain a mixed backlog, and a freshly
started worker meets a burst.

The catalog serves five copies of the tiny model under their own ids: a1 and a2 in pool a, b1
and b2 in pool b, c1 in pool c. A backlog cycling over a1, b1, a2, b2 is queued with no worker
up; then four workers start at once, `renderq worker --pool=a` twice and `--pool=b` twice.
Figures: images per second of each pool (its first run started → its last completed), and the
model loads of each worker (renderq:metrics:model_loads: a pool's worker warms its pool's
models once and should load nothing else, ever). Then 200 runs of pool c are queued, nobody
serving it, and one `renderq worker --pool=c` is started: the seconds from its start (and from
the end of the burst's submission) to its `ready.` line, its model loaded, the first run
started and the first completed."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from core.metrics import model_loads

from .stack import TINY_JOB, Infra, render_children, submit_batch, wait_drained

POOL_MODELS = {"a": ("a1", "a2"), "b": ("b1", "b2"), "c": ("c1",)}
_LOADED = re.compile(r"model \S+ loaded in ([0-9.]+)s")


def pool_catalog(directory: Path, tiny_model: str) -> Path:
    """The catalog of POOL_MODELS, each model its own copy of the tiny model."""
    directory.mkdir(parents=True, exist_ok=True)
    models = []
    for pool, ids in POOL_MODELS.items():
        for model in ids:
            shutil.copytree(tiny_model, directory / model, dirs_exist_ok=True)
            models.append({"id": model, "kind": "base", "source": f"./{model}", "pool": pool})
    path = directory / "models.json"
    path.write_text(json.dumps({"models": models}))
    return path


def pools(infra: Infra, jobs_per_pool: int, burst: int) -> dict:
    catalog = pool_catalog(infra.workdir / "pool-models", infra.tiny_model)
    stack = infra.stack("pools", RENDERQ_MODELS_FILE=catalog)
    try:
        stack.api()
        with stack.client() as client:
            order = ("a1", "b1", "a2", "b2")
            jobs = [TINY_JOB | {"model_id": order[i % 4], "seed": 5000 + i} for i in range(2 * jobs_per_pool)]
            run_ids = submit_batch(client, jobs)
            workers = {f"pool-{pool}-{n}": stack.worker(f"pool-{pool}-{n}", wait=False, args=(f"--pool={pool}",))
                       for pool in "ab" for n in (1, 2)}
            runs = wait_drained(stack, run_ids, 900)
            children = {child.pid: name for name, proc in workers.items() for child in render_children(proc)}
            loads = model_loads(stack.redis())
            for proc in workers.values():
                stack.drop(proc)
            figures = {"jobs_per_pool": jobs_per_pool, "pools": _per_pool(jobs, runs),
                       "loads": _loads(loads, children)}
            figures["burst"] = _burst(stack, client, burst)
    finally:
        stack.stop()
    return figures


def _per_pool(jobs: list[dict], runs: list[dict]) -> dict:
    out = {}
    for pool, models in POOL_MODELS.items():
        mine = [run for job, run in zip(jobs, runs) if job["model_id"] in models]
        if not mine:
            continue
        failed = [run for run in mine if run.get("status") != "completed"]
        if failed:
            raise RuntimeError(f"pool {pool}: {len(failed)} runs did not complete: {failed[0]}")
        began, ended = min(r["started_at"] for r in mine), max(r["completed_at"] for r in mine)
        out[pool] = {"runs": len(mine), "seconds": ended - began, "images_per_second": len(mine) / (ended - began),
                     "batch_size_mean": sum(int(r["timings"].get("batch_size", 1)) for r in mine) / len(mine),
                     "wrong_pool": sum(r.get("pool") != pool for r in mine)}
    return out


def _loads(loads: dict, children: dict[int, str]) -> dict:
    """Worker name (or render-process id when it is gone) → {model: loads}, with its pool."""
    out: dict[str, dict] = {}
    for (pool, worker, model), count in loads.items():
        pid = int(worker.rsplit(":", 1)[-1]) if worker.rsplit(":", 1)[-1].isdigit() else None
        name = children.get(pid, worker)
        out.setdefault(name, {"pool": pool, "models": {}})["models"][model] = count
    for entry in out.values():
        entry["one_per_model"] = (sorted(entry["models"]) == sorted(POOL_MODELS[entry["pool"]])
                                  and all(count == 1 for count in entry["models"].values()))
    return out


def _burst(stack, client, burst: int) -> dict:
    """`burst` runs of pool c queued, then a fresh worker of pool c: how long until it renders."""
    submitted = time.time()
    run_ids = submit_batch(client, [TINY_JOB | {"model_id": "c1", "seed": 9000 + i} for i in range(burst)])
    queued = time.time()
    worker = stack.worker("c-fresh", wait=False, args=("--pool=c",))
    started = time.time()
    ready_at = first_started = first_completed = None
    redis = stack.redis()
    deadline = started + 300
    while first_completed is None and time.time() < deadline:
        if ready_at is None and " ready." in worker.log():
            ready_at = time.time()
        with redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids[:16]:  # the oldest: the first taken (with their render group)
                pipe.hmget(f"renderq:run:{run_id}", "started_at", "completed_at")
            rows = pipe.execute()
        starts = [float(s) for s, _ in rows if s]
        ends = [float(c) for _, c in rows if c]
        first_started = min(starts) if starts else None
        first_completed = min(ends) if ends else None
        if not worker.alive():
            raise RuntimeError("burst worker died:\n" + worker.log()[-2000:])
        time.sleep(0.02)
    if first_completed is None:
        raise RuntimeError("no run of the burst completed within 300 s")
    loaded = _LOADED.search(worker.log())
    drained = wait_drained(stack, run_ids, 900)
    last = max(r["completed_at"] for r in drained)
    stack.drop(worker)
    return {
        "runs": burst, "submit_seconds": queued - submitted,
        "to_ready": (ready_at or first_started) - started, "model_load": float(loaded.group(1)) if loaded else None,
        "to_first_started": first_started - started, "to_first_completed": first_completed - started,
        "queued_to_first_completed": first_completed - queued,
        "drain_images_per_second": burst / (last - first_started),
        "completed": sum(r.get("status") == "completed" for r in drained),
    }
