"""The render process's finisher process (worker/finishers.py): it stores and completes rendered
runs in a process of its own without torch, and when it dies holding runs, they go back to the
queue and complete once; the render process starts a new one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devkit.procs import wait_until
from tests.conftest import wait_for_run

JOB = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2}


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def _finisher_of(worker_pid: int) -> int:
    """The finisher process: the child of the worker's render process running worker.finisher_process."""
    for render in _children(worker_pid):
        for child in _children(render):
            if "worker.finisher_process" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                return child
    raise LookupError("no finisher process")


def test_finisher_process_stores_without_torch_and_its_death_loses_no_run(stack):
    # The session stack's worker (its only one): killing its finisher costs the other tests nothing.
    [worker] = [proc for proc in stack.procs if "worker" in proc.popen.args]
    with stack.client() as api:
        warm = wait_for_run(api, api.post("/v1/generations", json=JOB).json()["run_id"])
        assert warm["status"] == "completed"
        finisher = _finisher_of(worker.pid)
        maps = Path(f"/proc/{finisher}/maps").read_text()
        assert "libtorch" not in maps, "the finisher process loaded torch"

        # Frozen, it takes the next run's images and never finishes them: the run stays running.
        os.kill(finisher, signal.SIGSTOP)
        run_id = api.post("/v1/generations", json={**JOB, "seed": 11}).json()["run_id"]
        wait_until(lambda: api.get(f"/v1/generations/{run_id}").json()["progress"] >= 50, 60, what="the render to end")
        time.sleep(0.5)
        assert api.get(f"/v1/generations/{run_id}").json()["status"] == "running"
        os.kill(finisher, signal.SIGKILL)

        run = wait_for_run(api, run_id, timeout=60)
        assert run["status"] == "completed" and run["attempt"] == 2, run
        assert _finisher_of(worker.pid) != finisher  # a new one took over
        again = wait_for_run(api, api.post("/v1/generations", json={**JOB, "seed": 12}).json()["run_id"])
        assert again["status"] == "completed"

    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    completions = [line for line in lines if line.get("run_id") == run_id and " completed in " in line["message"]]
    assert len(completions) == 1
    assert any("finisher process exited" in line["message"] for line in lines)
