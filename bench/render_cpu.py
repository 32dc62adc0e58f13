"""Render-process CPU per image, one request at a time (no backlog, so every run renders alone),
against the bare pipeline's process CPU for the same jobs, rounds interleaved.

The worker's render process is the `renderq worker` process's pool child (psutil: user + system
CPU of its threads, before and after N sequential jobs): it claims, renders, writes progress and
runs the heartbeat thread. Its finisher process (worker/finishers.py: PNG encode, upload, asset
and run records) and the Celery parent (broker fetch, hand-off to the child) are reported
beside it, and all three together. The bare loop's is
`time.process_time()` around the same N renders (bench/bare_loop.py)."""

from __future__ import annotations

import time

import psutil

from .batching import bare_process
from .service import FINAL
from .stack import TINY_JOB, Infra, finisher_processes, numbered, records, render_children, submit_many, wait_drained
from .stats import median


def render_cpu(infra: Infra, count: int, rounds: int) -> dict:
    jobs = numbered(TINY_JOB, count, first_seed=4000)
    stack = infra.stack("cpu")
    service: list[dict] = []
    bare_runs: list[dict] = []
    try:
        stack.api()
        worker = stack.worker("cpu")
        with stack.client() as client, bare_process(infra, "cpu") as bare:
            # Warm-up, waited for: " ready." is logged before the render process has loaded the model.
            wait_drained(stack, submit_many(client, 5, TINY_JOB), 120)
            bare.render(jobs[:5])
            bare_runs.append(bare.render(jobs))
            for _ in range(rounds):
                service.append(one_at_a_time(stack, worker, client, jobs))
                bare_runs.append(bare.render(jobs))
                print(f"  render process {service[-1]['render_cpu_seconds'] / count * 1000:.1f} ms CPU per image, "
                      f"bare {bare_runs[-1]['cpu_seconds'] / count * 1000:.1f} ms", flush=True)
    finally:
        stack.stop()
    return cpu_figures(service, bare_runs)


def _cpu(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def one_at_a_time(stack, worker, client, jobs: list[dict]) -> dict:
    """Each job submitted once the one before it has completed (watched in Redis every 1 ms, so
    the observer takes next to no CPU); the worker's CPU before and after all of them."""
    redis = stack.redis()
    children, parent, finishers = render_children(worker), psutil.Process(worker.pid), finisher_processes(worker)
    before = (_cpu(children), _cpu([parent]), _cpu(finishers))
    begin = time.perf_counter()
    run_ids = []
    for job in jobs:
        run_id = client.post("/v1/generations", json=job).json()["run_id"]
        while redis.hget(f"renderq:run:{run_id}", "status") not in FINAL:
            time.sleep(0.001)
        run_ids.append(run_id)
    seconds = time.perf_counter() - begin
    if [c.pid for c in render_children(worker) + finisher_processes(worker)] != [c.pid for c in children + finishers]:
        raise RuntimeError("the worker's render or finisher process changed during the CPU measurement")
    after = (_cpu(children), _cpu([parent]), _cpu(finishers))
    runs = records(stack, run_ids)
    failed = [r for r in runs if r.get("status") != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} CPU-measurement runs did not complete: {failed[0]}")
    return {
        "images": len(jobs), "seconds": seconds,
        "render_cpu_seconds": after[0] - before[0], "parent_cpu_seconds": after[1] - before[1],
        "finisher_cpu_seconds": after[2] - before[2],
        "inference_median": median([r["timings"]["inference_seconds"] for r in runs]),
        "end_to_end_median": median([r["completed_at"] - r["created_at"] for r in runs]),
    }


def cpu_figures(service: list[dict], bare_runs: list[dict]) -> dict:
    """CPU milliseconds per image, pooled over the rounds, and the ratios (also round by round:
    each service round ÷ the bare runs either side of it)."""
    images = sum(s["images"] for s in service)
    bare_images = sum(b["images"] for b in bare_runs)
    render_ms = sum(s["render_cpu_seconds"] for s in service) / images * 1000
    parent_ms = sum(s["parent_cpu_seconds"] for s in service) / images * 1000
    finisher_ms = sum(s.get("finisher_cpu_seconds", 0.0) for s in service) / images * 1000
    bare_ms = sum(b["cpu_seconds"] for b in bare_runs) / bare_images * 1000
    per_image = [b["cpu_seconds"] / b["images"] for b in bare_runs]
    return {
        "jobs": service[0]["images"] if service else 0, "rounds": len(service),
        "render_cpu_ms": render_ms, "parent_cpu_ms": parent_ms, "finisher_cpu_ms": finisher_ms, "bare_cpu_ms": bare_ms,
        "ratio": render_ms / bare_ms, "with_parent_ratio": (render_ms + parent_ms) / bare_ms,
        "worker_ratio": (render_ms + parent_ms + finisher_ms) / bare_ms,
        "round_ratios": [s["render_cpu_seconds"] / s["images"] / ((per_image[i] + per_image[i + 1]) / 2) for i, s in enumerate(service)],
        "bare_wall_ms": sum(b["seconds"] for b in bare_runs) / bare_images * 1000,
        "inference_median_ms": median([s["inference_median"] for s in service]) * 1000,
        "end_to_end_median_ms": median([s["end_to_end_median"] for s in service]) * 1000,
        "service": service, "bare": bare_runs,
    }
