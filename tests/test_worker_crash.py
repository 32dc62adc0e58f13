"""A worker SIGKILLed mid-render: the run completes on another worker within seconds."""

from __future__ import annotations

import json
import os
import time

import pytest
import redis

from tests.conftest import make_stack, wait_for_run
from devkit.procs import wait_until


@pytest.fixture
def two_workers(tmp_path_factory, tiny_model, redis_url, s3_endpoint):
    stack = make_stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint)
    try:
        workers = [stack.worker("a"), stack.worker("b")]
        stack.api()
        yield stack, workers
    finally:
        stack.stop()


def _owner(stack, run_id: str) -> str:
    client = redis.Redis.from_url(stack.env["RENDERQ_REDIS_URL"], decode_responses=True)
    return client.hget(f"renderq:run:{run_id}", "worker") or ""


def test_whole_worker_killed_mid_render_completes_on_the_other_worker_promptly(two_workers):
    stack, workers = two_workers
    with stack.client() as api:
        run_id = api.post(
            "/v1/generations",
            json={"prompt": "slow render", "width": 192, "height": 192, "num_inference_steps": 120, "seed": 3},
        ).json()["run_id"]
        wait_until(
            lambda: api.get(f"/v1/generations/{run_id}").json()["progress"] >= 5, 60, what="render to be under way"
        )
        owner_pid = int(_owner(stack, run_id).rsplit(":", 1)[1])
        victim = next(w for w in workers if os.getpgid(owner_pid) == w.pid)
        survivor = next(w for w in workers if w is not victim)
        victim.kill()  # SIGKILL to the whole process group: parent and pool child
        killed_at = time.monotonic()

        run = wait_for_run(api, run_id, timeout=90)
        recovered_in = time.monotonic() - killed_at
        assert run["status"] == "completed", run
        assert run["attempt"] == 2
        assert int(_owner(stack, run_id).rsplit(":", 1)[1]) != owner_pid
        assert os.getpgid(int(_owner(stack, run_id).rsplit(":", 1)[1])) == survivor.pid
        # The visibility timeout is far longer; the heartbeat reaper brings it back in seconds.
        assert recovered_in < 60, recovered_in

    listed = stack.s3().list_objects_v2(Bucket=stack.env["RENDERQ_S3_BUCKET"], Prefix=run_id)
    assert [obj["Key"] for obj in listed.get("Contents", []) if not obj["Key"].endswith(".thumb.webp")] == [f"{run_id}/0.png"]
    # Completed once: one completion in all the workers' (JSON) logs, one image in the record.
    lines = [json.loads(line) for worker in workers for line in worker.log().splitlines() if line.startswith("{")]
    completions = [line for line in lines if line.get("run_id") == run_id and " completed in " in line["message"]]
    assert len(completions) == 1 and len(run["images"]) == 1
