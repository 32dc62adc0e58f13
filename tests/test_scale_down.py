"""Scale-down is safe, on real processes: SIGTERM to a worker's parent process (what Kubernetes
sends the container's first process when a pod is scaled down, and `renderq worker --gpus`
forwards) in the middle of a render lets that render finish, be stored and acknowledged, and
the worker exit; a queued run it had not started stays in its queue for the next worker; an
idle worker exits within 2 s. Renders use devkit/sleep.py (a fixed cost per step, no CPU).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from devkit.procs import wait_until
from tests.conftest import make_stack, wait_for_run

pytestmark = pytest.mark.integration

STEP_SECONDS = 0.25
STEPS = 12  # a 3 s render


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory, tiny_model, redis_url, s3_endpoint):
    stack = make_stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint,
                       RENDERQ_TEST_PIPELINES=1, RENDERQ_DEFAULT_MODEL=f"sleep:{STEP_SECONDS}",
                       # A render process still starting on a busy machine must not have its message
                       # given back as one a dead worker held (storage/held_messages.py): one copy only.
                       RENDERQ_HEARTBEAT_STALE_AFTER=60)
    try:
        stack.api()
        yield stack
    finally:
        stack.stop()


def _submit(api, **body) -> str:
    response = api.post("/v1/generations", json={"prompt": "scale down", "width": 64, "height": 64} | body)
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


def _terminate(worker) -> float:
    """SIGTERM to the worker's parent only, as a container runtime sends it; the seconds it took to exit."""
    began = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    worker.popen.wait(60)
    return time.monotonic() - began


def _completions(worker, run_id: str) -> int:
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("run_id") == run_id and " completed in " in line["message"])


def _broker_holds(stack) -> dict:
    """Render messages waiting in each queue, and messages taken but not acknowledged."""
    client = stack.redis()
    lists = {key: client.llen(key) for key in client.keys("renderq.render*") if client.type(key) == "list"}
    return {"queued": {key: n for key, n in lists.items() if n}, "unacked": client.hlen("unacked")}


def test_sigterm_mid_render_finishes_and_acknowledges_it_and_leaves_queued_runs_queued(sleepy):
    stack = sleepy
    worker = stack.worker("leaving")
    with stack.client() as api:
        rendering = _submit(api, num_inference_steps=STEPS, seed=1)
        # Another size: another render group, so it is not rendered together with the first.
        waiting = _submit(api, num_inference_steps=2, width=72, seed=2)
        wait_until(lambda: api.get(f"/v1/generations/{rendering}").json()["progress"] >= 20, 30,
                   what="the render to be under way")
        at_sigterm = api.get(f"/v1/generations/{rendering}").json()
        assert at_sigterm["status"] == "running" and at_sigterm["progress"] < 90, at_sigterm

        took = _terminate(worker)
        assert worker.popen.returncode == 0, worker.log()[-3000:]
        run = api.get(f"/v1/generations/{rendering}").json()
        # Finished by the leaving worker itself, before it exited: stored, completed once, acknowledged.
        assert run["status"] == "completed" and run["attempt"] == 1, run
        assert _completions(worker, rendering) == 1
        assert took < STEPS * STEP_SECONDS + 10, took
        listed = stack.s3().list_objects_v2(Bucket=stack.env["RENDERQ_S3_BUCKET"], Prefix=rendering)
        keys = [obj["Key"] for obj in listed.get("Contents", [])]
        assert [key for key in keys if not key.endswith(".thumb.webp")] == [f"{rendering}/0.png"]  # one image
        # The run it had not started is still queued, its message in its queue, none held.
        assert api.get(f"/v1/generations/{waiting}").json()["status"] == "queued"
        assert _broker_holds(stack) == {"queued": {"renderq.render": 1}, "unacked": 0}

        successor = stack.worker("successor")
        assert wait_for_run(api, waiting, timeout=30)["status"] == "completed"
        assert _completions(successor, waiting) == 1 and _completions(successor, rendering) == 0
    assert _broker_holds(stack) == {"queued": {}, "unacked": 0}
    successor.stop()


def test_sigterm_to_an_idle_worker_exits_within_two_seconds(sleepy):
    stack = sleepy
    worker = stack.worker("idle")
    with stack.client() as api:
        # Warm and idle: it has rendered a run (its render process has loaded) and waits for the next.
        assert wait_for_run(api, _submit(api, num_inference_steps=1), timeout=30)["status"] == "completed"
    time.sleep(0.5)
    took = _terminate(worker)
    assert worker.popen.returncode == 0, worker.log()[-3000:]
    assert took < 2.0, f"an idle worker took {took:.2f}s to exit"
    print(f"idle worker exited {took:.2f}s after SIGTERM")
