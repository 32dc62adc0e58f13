"""The real stack the benchmarks run against: redis-server, SeaweedFS, Celery workers, the API.

Process helpers are the test suite's (devkit/procs.py), so benchmarks and tests start the
service the same way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis

from devkit.procs import Proc, start_api, start_redis, start_seaweedfs, start_worker, wait_until

ACCESS_KEY = "renderq-bench"
SECRET_KEY = "renderq-bench-secret"
PROMPT = "A blue ceramic coffee mug on a wooden table"
# The tiny job of the overhead, throughput and memory benchmarks.
TINY_JOB = {"prompt": PROMPT, "width": 64, "height": 64, "num_inference_steps": 2, "seed": 7}


@dataclass
class Infra:
    """Redis and SeaweedFS, shared by every benchmark; each benchmark gets its own Redis DB."""

    workdir: Path
    tiny_model: str
    device: str = "cpu"  # where workers and the bare pipeline render (`python -m bench --device cuda`)
    redis_url: str = ""
    s3_endpoint: str = ""
    procs: list[Proc] = field(default_factory=list)
    _next_db: int = 1

    def start(self) -> "Infra":
        redis_proc, self.redis_url = start_redis(self.workdir)
        weed_proc, self.s3_endpoint = start_seaweedfs(self.workdir, ACCESS_KEY, SECRET_KEY)
        self.procs += [redis_proc, weed_proc]
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def stack(self, name: str, **overrides) -> "Stack":
        # Redis has 16 DBs (0 unused here); a stopped stack flushes its own, so the numbers go
        # round: a full run starts more stacks than that, never more than 15 at once.
        db = (self._next_db - 1) % 15 + 1
        self._next_db += 1
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "RENDERQ_REDIS_URL": f"{self.redis_url}/{db}",
            "RENDERQ_STORAGE": "s3",
            "RENDERQ_S3_ENDPOINT": self.s3_endpoint,
            "RENDERQ_S3_BUCKET": f"renderq-bench-{db}",
            "RENDERQ_S3_ACCESS_KEY": ACCESS_KEY,
            "RENDERQ_S3_SECRET_KEY": SECRET_KEY,
            "RENDERQ_DEFAULT_MODEL": self.tiny_model,
            "RENDERQ_DEVICE": self.device,
            "RENDERQ_TEST_PIPELINES": "1",
            # Workers at INFO: devkit/procs.start_worker waits for Celery's "ready." line and the
            # cold-start benchmark reads the model-load line (since issue 5 the worker's
            # logging follows this setting). The API runs at WARNING (Stack.api).
            "RENDERQ_LOG_LEVEL": "INFO",
            # The figures in BENCHMARKS.md predate API keys; keep measuring the same path. The
            # `keys` section (bench/api_load.py api_keys) runs a second API with keys on beside it.
            "RENDERQ_AUTH_DISABLED": "true",
            "HF_HUB_OFFLINE": "1",
            # One torch thread in the worker and in the bare-pipeline run alike: two cores are
            # shared by worker, API, Redis and SeaweedFS, and the comparison must be fair.
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({key: str(value) for key, value in overrides.items()})
        return Stack(env=env, workdir=workdir)


@dataclass
class Stack:
    env: dict
    workdir: Path
    api_url: str = ""
    api_proc: Proc | None = None
    workers: list[Proc] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    def worker(self, name: str, wait: bool = True, args: tuple[str, ...] = (), **overrides) -> Proc:
        """A `renderq worker` on this stack (`args`: its options, e.g. --pool=NAME; `overrides`:
        environment of its own, e.g. RENDERQ_MAX_BATCH)."""
        env = self.env | {key: str(value) for key, value in overrides.items()}
        if wait:
            proc = start_worker(env, self.workdir, name, *args)
        else:
            from devkit.procs import renderq_command

            argv = renderq_command("worker", f"--hostname={name}@%h", "--loglevel=INFO", *args)
            proc = Proc(argv, self.workdir / f"worker-{name}.log", env=env)
        self.workers.append(proc)
        self.procs.append(proc)
        return proc

    def drop(self, proc: Proc) -> None:
        """Stop one process of this stack (a worker) before the others."""
        proc.stop()
        if proc in self.workers:
            self.workers.remove(proc)
        self.procs.remove(proc)

    def api(self) -> str:
        proc, self.api_url = start_api(self.env | {"RENDERQ_LOG_LEVEL": "WARNING"}, self.workdir)
        self.api_proc = proc
        self.procs.append(proc)
        return self.api_url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["RENDERQ_REDIS_URL"], decode_responses=True)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        self.workers.clear()
        self.redis().flushdb()


def render_children(worker: Proc) -> list[psutil.Process]:
    """The pool processes of a worker (the ones that load the model and render)."""
    try:
        return psutil.Process(worker.pid).children()
    except psutil.NoSuchProcess:
        return []


def finisher_processes(worker: Proc) -> list[psutil.Process]:
    """The finisher processes of a worker's render processes (worker/finishers.py: they store
    and complete the rendered runs)."""
    found = []
    for child in render_children(worker):
        try:
            found += child.children()
        except psutil.NoSuchProcess:
            pass
    return found


def submit_many(client: httpx.Client, count: int, job: dict) -> list[str]:
    ids = []
    for i in range(count):
        response = client.post("/v1/generations", json=job)
        response.raise_for_status()
        ids.append(response.json()["run_id"])
    return ids


def submit_batch(client: httpx.Client, jobs: list[dict]) -> list[str]:
    """Queue `jobs` through POST /v1/batches (up to 1,000 a call, the API's default cap): a
    backlog written in a few requests. Returns the run ids in order."""
    ids: list[str] = []
    for start in range(0, len(jobs), 1000):
        response = client.post("/v1/batches", json=jobs[start:start + 1000])
        response.raise_for_status()
        ids += response.json()["run_ids"]
    return ids


def numbered(job: dict, count: int, first_seed: int = 1000) -> list[dict]:
    """`count` copies of `job`, each with its own seed (runs of a backlog are distinct requests)."""
    return [job | {"seed": first_seed + i} for i in range(count)]


def records(stack: Stack, run_ids: list[str]) -> list[dict]:
    """Raw run records straight from Redis (timestamps as floats), in submission order."""
    import json

    client = stack.redis()
    with client.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hgetall(f"renderq:run:{run_id}")
        raws = pipe.execute()
    out = []
    for raw in raws:
        record = dict(raw)
        for key in ("created_at", "started_at", "completed_at"):
            if record.get(key):
                record[key] = float(record[key])
        record["timings"] = json.loads(record.get("timings") or "{}")
        out.append(record)
    return out


def wait_drained(stack: Stack, run_ids: list[str], timeout: float) -> list[dict]:
    client = stack.redis()
    keys = [f"renderq:run:{run_id}" for run_id in run_ids]

    def done() -> bool:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "status")
            statuses = pipe.execute()
        return all(status in ("completed", "failed") for status in statuses)

    wait_until(done, timeout, interval=0.25, what=f"{len(run_ids)} runs to finish")
    return records(stack, run_ids)


def now() -> float:
    return time.time()
