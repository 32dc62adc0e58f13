"""One API process under load from wrk (a separate C load generator) on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from .stack import TINY_JOB, Infra, wait_drained

# wrk calls done() once at the end; it prints the figures as one JSON line.
_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d," ..
    "\\"max_us\\":%d,\\"non_2xx\\":%d,\\"socket_errors\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""

# A submit of the tiny job, as wrk sends it.
SUBMIT = "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = '%s'\n" % json.dumps(TINY_JOB)


def wrk_argv(url: str, script: str, seconds: float, connections: int, headers: dict | None = None) -> list[str]:
    """wrk's command line: one thread, `connections` connections, each of `headers` as `-H`."""
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script,
            *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")), url]


def _wrk(url: str, script: str, seconds: float, connections: int, pid: int | None = None, headers: dict | None = None) -> dict:
    """wrk's figures, plus the CPU seconds the API process (`pid`) spent: requests per
    CPU-second is what one process does with a core to itself, whoever else shares the machine.
    `headers` go on every request (`wrk -H`)."""
    cpu = psutil.Process(pid) if pid else None
    cpu_before = sum(cpu.cpu_times()[:2]) if cpu else 0.0
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + _REPORT)
    try:
        out = subprocess.run(
            wrk_argv(url, handle.name, seconds, connections, headers),
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    cpu_seconds = sum(cpu.cpu_times()[:2]) - cpu_before if cpu else float("nan")
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    result = json.loads(line[len("WRK_JSON "):])
    result["per_second"] = result["requests"] / (result["duration_us"] / 1e6)
    result["api_cpu_seconds"] = cpu_seconds
    result["per_cpu_second"] = result["requests"] / cpu_seconds if cpu else float("nan")
    for key in ("p50", "p90", "p99", "max"):
        result[f"{key}_ms"] = result.pop(f"{key}_us") / 1000
    return result


def api_load(infra: Infra, seconds: float, connections: int) -> dict:
    if shutil.which("wrk") is None:
        raise FileNotFoundError("wrk (apt-get install wrk)")
    stack = infra.stack("api-load")
    try:
        base = stack.api()
        # A completed run to read: status reads then sign a URL, as callers polling would see.
        stack.worker("api-load")
        with stack.client() as client:
            run_id = client.post("/v1/generations", json=TINY_JOB).json()["run_id"]
            wait_drained(stack, [run_id], 60)
            queued_id = None
        for worker in list(stack.workers):  # the API alone on the CPU from here on
            worker.stop()
            stack.procs.remove(worker)
        stack.workers.clear()
        with stack.client() as client:
            queued_id = client.post("/v1/generations", json=TINY_JOB).json()["run_id"]
        _wrk(f"{base}/v1/generations/{run_id}", "", 2, connections)  # warm-up
        pid = stack.api_proc.pid
        results = {
            "connections": connections,
            "seconds": seconds,
            "submit": _wrk(f"{base}/v1/generations", SUBMIT, seconds, connections, pid),
            "status_completed": _wrk(f"{base}/v1/generations/{run_id}", "", seconds, connections, pid),
            "status_queued": _wrk(f"{base}/v1/generations/{queued_id}", "", seconds, connections, pid),
        }
        results["floor"] = _floor(stack, seconds, connections)
    finally:
        stack.stop()
    return results


def _floor(stack, seconds: float, connections: int) -> dict:
    import sys

    from devkit.procs import Proc, free_port, port_open, wait_until

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    proc = Proc(argv, stack.workdir / "floor.log", env=stack.env)
    try:
        wait_until(lambda: port_open(port), 30, what="floor app")
        url = f"http://127.0.0.1:{port}/floor/gen_0"
        _wrk(url, "", 1, connections)
        return _wrk(url, "", seconds, connections, proc.pid)
    finally:
        proc.stop()
