"""Faults survived, against real processes of a private stack: an API restart, a Redis
restart (append-only persistence), an S3 outage during upload, and a render past its time
limit. Each test prints its figures (runs submitted / completed / lost)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, Stack, make_stack, wait_for_run
from devkit.procs import Proc, start_redis, start_seaweedfs, wait_until

# Its own Redis and SeaweedFS (started here, not through the stack fixtures).
pytestmark = pytest.mark.integration

SMALL = {"prompt": "a teapot", "width": 64, "height": 64, "num_inference_steps": 2}
MEDIUM = {"prompt": "a teapot", "width": 128, "height": 128, "num_inference_steps": 12}
SOFT_LIMIT = 10


@dataclass
class Faults:
    stack: Stack
    workdir: Path
    redis: Proc
    redis_port: int
    weed: Proc
    s3_port: int
    worker: Proc


@pytest.fixture(scope="module")
def faults(tmp_path_factory, tiny_model):
    workdir = tmp_path_factory.mktemp("faults")
    started: list = []  # stopped in reverse even when setup fails half way, so nothing leaks
    try:
        redis_proc, redis_url = start_redis(workdir, persistent=True)
        started.append(redis_proc)
        weed, s3 = start_seaweedfs(workdir, S3_ACCESS_KEY, S3_SECRET_KEY)
        started.append(weed)
        stack = make_stack(
            tmp_path_factory, tiny_model, redis_url, s3,
            RENDERQ_SOFT_TIME_LIMIT=SOFT_LIMIT, RENDERQ_HARD_TIME_LIMIT=SOFT_LIMIT + 10, RENDERQ_S3_MAX_ATTEMPTS=3,
        )
        started.append(stack)
        worker = stack.worker("faults")
        stack.api()
        state = Faults(stack, workdir, redis_proc, int(redis_url.rsplit(":", 1)[1]), weed, int(s3.rsplit(":", 1)[1]), worker)
        yield state
        started += [state.weed, state.redis]  # the tests may have replaced them
    finally:
        for proc in reversed(started):
            proc.stop()


def report(fault: str, runs: list[dict], **more) -> None:
    """Figures for the note: a run is lost if it never reached a final status."""
    completed = sum(run["status"] == "completed" for run in runs)
    failed = sum(run["status"] == "failed" for run in runs)
    print(f"\nFAULT {fault}: submitted={len(runs)} completed={completed} failed={failed} lost={len(runs) - completed - failed} {more}")


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"
    return response.json()


def test_api_restart_loses_nothing(faults):
    stack = faults.stack
    with stack.client() as api:
        submitted = [api.post("/v1/generations", json=MEDIUM | {"seed": i}, headers={"Idempotency-Key": f"restart-{i}"}) for i in range(3)]
    assert all(r.status_code == 202 for r in submitted)
    old = next(p for p in stack.procs if p.log_path.name.startswith("api-"))
    old.kill()  # SIGKILL: no graceful anything
    old.popen.wait(10)
    stack.procs.remove(old)
    stack.api()  # a new process on a new port: it holds nothing the old one had
    with stack.client() as api:
        again = api.post("/v1/generations", json=MEDIUM | {"seed": 0}, headers={"Idempotency-Key": "restart-0"})
        assert again.json()["run_id"] == submitted[0].json()["run_id"]
        runs = [wait_for_run(api, r.json()["run_id"]) for r in submitted]
    report("api-sigkill-restart", runs)
    assert all(run["status"] == "completed" for run in runs)


def test_redis_restart_keeps_queued_runs_and_the_api_answers_503_meanwhile(faults):
    stack = faults.stack
    with stack.client() as api:
        # Each its own step count: runs of one batch group would all start together (one model
        # call), and this test needs some still queued when Redis goes.
        ids = [api.post("/v1/generations", json=MEDIUM | {"seed": i, "num_inference_steps": 12 + i}).json()["run_id"]
               for i in range(4)]
        statuses_before = [api.get(f"/v1/generations/{run_id}").json()["status"] for run_id in ids]
        faults.redis.stop()  # SIGTERM; appendonly yes has the records and the queue on disk
        down = {
            "get": api.get(f"/v1/generations/{ids[0]}"),
            "post": api.post("/v1/generations", json=SMALL),
            "post-idempotent": api.post("/v1/generations", json=SMALL, headers={"Idempotency-Key": "during-outage"}),
        }
        for response in down.values():
            assert_problem(response, 503, "service-unavailable")
            assert response.headers["retry-after"]
        ready = api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("down")
        assert api.get("/healthz").status_code == 200
        time.sleep(2)  # the worker notices too
        faults.redis, _ = start_redis(faults.workdir, persistent=True, port=faults.redis_port)

        # Nobody restarts the API or the worker: they reconnect by themselves.
        wait_until(lambda: api.get(f"/v1/generations/{ids[0]}").status_code == 200, 30, interval=0.2, what="API to recover")
        runs = [wait_for_run(api, run_id, timeout=120) for run_id in ids]
        later = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"], timeout=60)
    report("redis-restart", runs + [later], queued_when_stopped=statuses_before.count("queued"), attempts=[r["attempt"] for r in runs])
    assert "queued" in statuses_before
    assert all(run["status"] == "completed" for run in runs)
    assert later["status"] == "completed"


class DroppingEndpoint(threading.Thread):
    """Stands on the S3 port while SeaweedFS is down: takes each connection and drops it,
    counting them, so the test sees how many times the upload was tried."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.settimeout(0.2)
        self.connections = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(2)
        self.server.close()


def test_s3_outage_retries_then_fails_the_run_and_the_worker_serves_the_next(faults):
    stack = faults.stack
    faults.weed.stop()
    wait_until(lambda: _port_free(faults.s3_port), 10, what="S3 port to free up")
    dropping = DroppingEndpoint(faults.s3_port)
    dropping.start()
    try:
        with stack.client() as api:
            failed = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"], timeout=60)
            tries = dropping.connections
            ready = api.get("/readyz")
    finally:
        dropping.stop()
    assert failed["status"] == "failed", failed
    assert failed["error"]["type"] == "/problems/storage-failed" and "3 tries" in failed["error"]["detail"], failed["error"]
    assert tries >= 3  # the upload was retried (with botocore's exponential backoff)
    assert ready.status_code == 503 and ready.json()["checks"]["storage"].startswith("down")

    faults.weed, _ = start_seaweedfs(faults.workdir, S3_ACCESS_KEY, S3_SECRET_KEY, s3_port=faults.s3_port)
    with stack.client() as api:
        later = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"], timeout=60)
        assert later["status"] == "completed", later
        assert httpx.get(later["image_url"]).status_code == 200
    assert faults.worker.alive()
    with stack.client() as api:
        metrics = api.get("/metrics").text
    assert 'renderq_run_failures_total{problem="storage-failed"} 1.0' in metrics
    assert 'renderq_runs_total{status="failed"} 1.0' in metrics
    report("s3-outage", [failed, later], failed_with="storage-failed", upload_tries=tries)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_render_past_its_time_limit_fails_and_the_worker_lives_on(faults):
    stack = faults.stack
    with stack.client() as api:
        slow = api.post("/v1/generations", json={"prompt": "forever", "width": 512, "height": 512, "num_inference_steps": 150})
        run = wait_for_run(api, slow.json()["run_id"], timeout=SOFT_LIMIT + 60)
        assert run["status"] == "failed"
        assert run["error"]["type"] == "/problems/render-timeout"
        later = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"], timeout=60)
    assert later["status"] == "completed"
    assert faults.worker.alive()
    report("render-timeout", [run, later], failed_with="render-timeout")


def test_a_hung_render_is_killed_at_the_hard_limit_fails_and_the_worker_lives_on(faults):
    """A render stuck where the soft limit cannot reach it (SIGSTOP stands in for a hung CUDA
    call): the hard limit kills the render process, the Celery parent records the failure
    (RenderTask.on_failure) and forks a fresh render process for the next run."""
    stack = faults.stack
    faults.worker.stop()
    stack.procs.remove(faults.worker)
    # A stale-after longer than the hard limit: the reaper must not take the run back first.
    hard = stack.worker_with("hard", RENDERQ_SOFT_TIME_LIMIT=3, RENDERQ_HARD_TIME_LIMIT=6, RENDERQ_HEARTBEAT_STALE_AFTER=60)
    with stack.client() as api:
        run_id = api.post("/v1/generations", json={"prompt": "hangs", "width": 256, "height": 256, "num_inference_steps": 150}).json()["run_id"]
        wait_until(lambda: api.get(f"/v1/generations/{run_id}").json()["status"] == "running", 30, what="render to start")
        render_pid = int(stack.redis().hget(f"renderq:run:{run_id}", "worker").rsplit(":", 1)[1])
        assert render_pid != hard.pid
        os.kill(render_pid, signal.SIGSTOP)
        run = wait_for_run(api, run_id, timeout=60)
        later = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"], timeout=60)
    assert run["status"] == "failed" and run["attempt"] == 1, run
    assert run["error"]["type"] == "/problems/render-timeout"
    assert later["status"] == "completed"
    assert hard.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(render_pid, 0)  # the hung process is gone
    report("render-hard-timeout", [run, later], failed_with="render-timeout")
