"""Service metrics kept in Redis, so that every process (API replicas, workers on other
machines) adds to one set of numbers and any API process can expose them at /metrics.

Why not prometheus_client's multiprocess mode: it shares numbers through files in one
directory, so it only aggregates processes on one host; renderq's workers run on GPU
machines apart from the API. Redis is already shared by all of them, so a few HINCRBYs per
run (in the same round trip as the state change where possible) keep the totals there, and
api/routes/metrics.py turns them into Prometheus families at scrape time.

Layout (no TTL; counters only grow, as Prometheus expects):
  renderq:metrics:runs           hash  "<status>"  → runs that entered that status
  renderq:metrics:failures       hash  "<problem slug>" → failed runs by problem
  renderq:metrics:hist:<name>    hash  "<label>|<le>" / "<label>|sum" / "<label>|count"
  renderq:metrics:webhooks       hash  "<outcome>" → webhook deliveries
  renderq:metrics:workers        zset  worker id → last seen (epoch)
  renderq:metrics:pool_workers:<pool>  zset  worker id → last seen, the workers of one pool
  renderq:metrics:model_loads    hash  "<pool>|<worker id>|<model>" → times that worker loaded it
  renderq:metrics:gpu            hash  worker id → {"allocated": bytes, "reserved": bytes, "at": epoch}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

RUNS = "renderq:metrics:runs"
FAILURES = "renderq:metrics:failures"
HIST_PREFIX = "renderq:metrics:hist:"
WEBHOOKS = "renderq:metrics:webhooks"
WORKERS = "renderq:metrics:workers"
GPU = "renderq:metrics:gpu"
POOL_WORKERS = "renderq:metrics:pool_workers:"
MODEL_LOADS = "renderq:metrics:model_loads"

# Seconds. Job: a tiny CPU render to a long GPU batch; step: one denoising step.
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

HISTOGRAMS: dict[str, tuple[str, tuple[float, ...], str]] = {
    # name → (label name, buckets, help)
    "job_seconds": ("operation", JOB_BUCKETS, "Render time of completed runs: load + inference + upload."),
    "stage_seconds": ("operation_stage", STAGE_BUCKETS, "Time in each stage of completed runs (queue, load, inference, upload)."),
    "denoising_step_seconds": ("operation", STEP_BUCKETS, "Mean time of one denoising step, one observation per completed run."),
}


def _observe(pipe, name: str, label: str, value: float) -> None:
    _, buckets, _ = HISTOGRAMS[name]
    key = HIST_PREFIX + name
    le = next((str(b) for b in buckets if value <= b), "+Inf")
    pipe.hincrby(key, f"{label}|{le}", 1)
    pipe.hincrbyfloat(key, f"{label}|sum", value)
    pipe.hincrby(key, f"{label}|count", 1)


def record_completed_run(client: redis.Redis, operation: str, timings: dict[str, float], steps: int) -> None:
    """Called by the worker once per completed run."""
    with client.pipeline(transaction=False) as pipe:
        if "total_seconds" in timings:
            _observe(pipe, "job_seconds", operation, timings["total_seconds"])
        for stage in ("queue", "load", "inference", "upload"):
            if f"{stage}_seconds" in timings:
                _observe(pipe, "stage_seconds", f"{operation}/{stage}", timings[f"{stage}_seconds"])
        if steps > 0 and "inference_seconds" in timings:
            _observe(pipe, "denoising_step_seconds", operation, timings["inference_seconds"] / steps)
        pipe.execute()


def count_webhook_delivery(client: redis.Redis, outcome: str) -> None:
    """For the webhook sender: outcome is e.g. 'delivered', 'failed', 'retried'."""
    client.hincrby(WEBHOOKS, outcome, 1)


def worker_seen(client: redis.Redis, worker_id: str, pool: str | None = "", listed_only: bool = False) -> None:
    """`worker_id` is alive; a render worker (`pool` not None) counts among its pool's, or with
    `listed_only` only once it is listed there (its render process lists it when warm)."""
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        pipe.zadd(WORKERS, {worker_id: now})
        if pool is not None:
            pipe.zadd(POOL_WORKERS + (pool or "default"), {worker_id: now}, xx=listed_only)
        pipe.execute()


def worker_gone(client: redis.Redis, worker_id: str, pool: str = "") -> None:
    """A worker that stops (warm shutdown) is no longer counted."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zrem(WORKERS, worker_id)
        pipe.zrem(POOL_WORKERS + (pool or "default"), worker_id)
        pipe.execute()


def pool_workers(client: redis.Redis, pool: str, within_seconds: float) -> list[str]:
    """The workers of `pool` seen in the last `within_seconds`."""
    return client.zrangebyscore(POOL_WORKERS + (pool or "default"), time.time() - within_seconds, "+inf")


def count_model_load(client: redis.Redis, pool: str, worker_id: str, model: str) -> None:
    client.hincrby(MODEL_LOADS, f"{pool or 'default'}|{worker_id}|{model}", 1)


def model_loads(client: redis.Redis) -> dict[tuple[str, str, str], int]:
    """(pool, worker id, model) → loads."""
    return {tuple(field.split("|", 2)): int(count) for field, count in client.hgetall(MODEL_LOADS).items()}


def record_gpu_memory(client: redis.Redis, worker_id: str, allocated: int, reserved: int) -> None:
    client.hset(GPU, worker_id, json.dumps({"allocated": allocated, "reserved": reserved, "at": time.time()}))


@dataclass
class Histogram:
    buckets: list[tuple[str, float]]  # cumulative (le, count), ending with +Inf
    count: float
    sum: float


def read_histograms(client: redis.Redis, name: str) -> dict[str, Histogram]:
    """label value → cumulative histogram, as Prometheus wants it."""
    _, buckets, _ = HISTOGRAMS[name]
    raw = client.hgetall(HIST_PREFIX + name)
    labels = {field.rsplit("|", 1)[0] for field in raw}
    out = {}
    for label in sorted(labels):
        running, cumulative = 0.0, []
        for le in [str(b) for b in buckets] + ["+Inf"]:
            running += float(raw.get(f"{label}|{le}", 0))
            cumulative.append((le, running))
        out[label] = Histogram(cumulative, float(raw.get(f"{label}|count", 0)), float(raw.get(f"{label}|sum", 0)))
    return out


def live_workers(client: redis.Redis, within_seconds: float) -> int:
    return client.zcount(WORKERS, time.time() - within_seconds, "+inf")


def gpu_memory(client: redis.Redis, within_seconds: float) -> dict[str, dict]:
    now = time.time()
    out = {}
    for worker_id, value in client.hgetall(GPU).items():
        data = json.loads(value)
        if now - data.get("at", 0) <= within_seconds:
            out[worker_id] = data
    return out
