"""Benchmarks of jobs through the whole service: overhead, throughput, memory, scaling, cold start."""

from __future__ import annotations

import bisect
import json
import re
import subprocess
import sys
import time

import psutil

from .stack import TINY_JOB, Infra, finisher_processes, records, render_children, submit_many, wait_drained
from .stats import median, percentile

FINAL = ("completed", "failed")


def bare_pipeline(infra: Infra, count: int, job: dict = TINY_JOB) -> dict:
    """(a): the job straight on the pipeline, one process, the worker's environment. In a
    session of its own like the workers, so the kernel's per-session CPU sharing (autogroup)
    treats both alike."""
    env = infra.stack("direct").env
    out = subprocess.run(
        [sys.executable, "-m", "bench.direct", infra.tiny_model, str(count), json.dumps(job)],
        env=env, check=True, capture_output=True, text=True, start_new_session=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    seconds = result["seconds"]
    result |= {
        "median": median(seconds),
        "p90": percentile(seconds, 90),
        "images_per_second": len(seconds) / sum(seconds),
        "images_per_cpu_second": len(seconds) / sum(result["cpu_seconds"]),
    }
    return result


def overhead(infra: Infra, count: int, poll_interval: float = 0.005) -> dict:
    """(b): the same job through API → Celery → worker → S3 → status, one at a time."""
    stack = infra.stack("overhead")
    try:
        stack.worker("overhead")
        stack.api()
        redis = stack.redis()
        with stack.client() as client:
            # Warm-up: connections, first PNG, first upload; waited for, because " ready." is
            # logged before the render process has finished loading the model.
            wait_drained(stack, submit_many(client, 5, TINY_JOB), 120)
            client_seconds, png_seconds, run_ids = _jobs_polled_through_api(client, count, poll_interval)
            waited_png = _jobs_waited_through_api(client, count)
            quiet_ids = _jobs_watched_in_redis(client, redis, count)
        polled = records(stack, run_ids)
        runs = records(stack, quiet_ids)
    finally:
        stack.stop()
    waited = {"client_waited_png": {"median": median(waited_png), "p90": percentile(waited_png, 90)}}
    return _overhead_figures(count, poll_interval, runs, polled, client_seconds) | _png_figures(png_seconds) | waited


def _jobs_polled_through_api(client, count: int, poll_interval: float) -> tuple[list[float], list[float], list[str]]:
    """The client's view: submit, poll the API until it says completed, then fetch the PNG from
    its signed URL. Returns each job's seconds from submit to completed seen and to the PNG's
    bytes in hand, and the run ids."""
    client_seconds, png_seconds, run_ids = [], [], []
    for _ in range(count):
        begin = time.perf_counter()
        run = client.post("/v1/generations", json=TINY_JOB).json()
        while run["status"] not in FINAL:
            time.sleep(poll_interval)
            run = client.get(f"/v1/generations/{run['run_id']}").json()
        client_seconds.append(time.perf_counter() - begin)
        if run["status"] == "completed":
            client.get(run["image_url"]).raise_for_status()
        png_seconds.append(time.perf_counter() - begin)
        run_ids.append(run["run_id"])
    return client_seconds, png_seconds, run_ids


def _jobs_waited_through_api(client, count: int) -> list[float]:
    """The view of a client that waits in its submit (`Prefer: wait=30`: the answer comes when
    the run ends, as a synchronous server's would), then fetches the PNG: seconds to bytes in hand."""
    png_seconds = []
    for _ in range(count):
        begin = time.perf_counter()
        run = client.post("/v1/generations", json=TINY_JOB, headers={"Prefer": "wait=30"}).json()
        if run["status"] != "completed":
            raise RuntimeError(f"a waited run did not complete in its submit: {run}")
        client.get(run["image_url"]).raise_for_status()
        png_seconds.append(time.perf_counter() - begin)
    return png_seconds


def _png_figures(png_seconds: list[float]) -> dict:
    """Submit → PNG bytes fetched, as the client saw it (compared with the bare pipeline's
    median in the report)."""
    return {"client_png_seconds": png_seconds,
            "client_png": {"median": median(png_seconds), "p90": percentile(png_seconds, 90)}}


def _jobs_watched_in_redis(client, redis, count: int) -> list[str]:
    """The record's view: the same, but waiting by reading the status field straight from
    Redis (~50 µs a look instead of an HTTP request through the API), so that the observer
    does not take CPU from what it measures on two shared cores. Returns the run ids."""
    quiet_ids = []
    for _ in range(count):
        run_id = client.post("/v1/generations", json=TINY_JOB).json()["run_id"]
        while redis.hget(f"renderq:run:{run_id}", "status") not in FINAL:
            time.sleep(0.001)
        quiet_ids.append(run_id)
    return quiet_ids


def _overhead_figures(count: int, poll_interval: float, runs: list[dict], polled: list[dict], client_seconds: list[float]) -> dict:
    """What `overhead` returns, from the records of the quiet jobs (`runs`) and of the polled
    ones, whose client-side times are `client_seconds`."""
    polled_overhead = [r["completed_at"] - r["created_at"] - r["timings"]["inference_seconds"] for r in polled]
    failed = [r for r in runs + polled if r.get("status") != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} overhead runs did not complete: {failed[0]}")
    end_to_end = [r["completed_at"] - r["created_at"] for r in runs]
    inference = [r["timings"]["inference_seconds"] for r in runs]
    per_job = [total - inf for total, inf in zip(end_to_end, inference)]
    queue = [r["started_at"] - r["created_at"] for r in runs]
    upload = [r["timings"]["upload_seconds"] for r in runs]
    # What the caller waits beyond the render itself (the same job's inference in the worker).
    client_overhead = [seconds - r["timings"]["inference_seconds"] for seconds, r in zip(client_seconds, polled)]
    return {
        "jobs": count,
        "poll_interval": poll_interval,
        "end_to_end": end_to_end,
        "inference": inference,
        "overhead": per_job,
        "client_seconds": client_seconds,
        "client_overhead": client_overhead,
        "overhead_while_polled": polled_overhead,
        "queue": queue,
        "upload": upload,
        "summary": {
            name: {"median": median(values), "p90": percentile(values, 90)}
            for name, values in {
                "end_to_end": end_to_end, "inference": inference, "overhead": per_job,
                "client_seconds": client_seconds, "client_overhead": client_overhead,
                "overhead_while_polled": polled_overhead,
                "queue": queue, "upload": upload,
                "other": [o - q - u for o, q, u in zip(per_job, queue, upload)],
            }.items()
        },
    }


def drain(infra: Infra, count: int, measured: int, sample_every: float = 0.2, job: dict = TINY_JOB) -> dict:
    """Queue `count` tiny jobs, then start one worker and let it drain them, sampling the RSS
    of its processes. Throughput is taken over the first `measured` jobs; memory over all."""
    stack = infra.stack(f"drain-{job['width']}-{job['num_inference_steps']}")
    try:
        stack.api()
        with stack.client() as client:
            run_ids = submit_many(client, count, job)
        worker = stack.worker("drain", wait=False)
        redis = stack.redis()
        keys = [f"renderq:run:{run_id}" for run_id in run_ids]
        samples, cpu_samples = _sample_while_draining(worker, redis, keys, time.monotonic() + 120 + count, sample_every)
        runs = wait_drained(stack, run_ids, 30)
        children = render_children(worker)
        samples.append((time.time(), sum(c.memory_info().rss for c in children), psutil.Process(worker.pid).memory_info().rss))
    finally:
        stack.stop()
    return _drain_figures(count, measured, runs, samples, cpu_samples)


def _sample_while_draining(
    worker, redis, keys: list[str], deadline: float, sample_every: float
) -> tuple[list[tuple[float, int, int]], list[tuple[float, float]]]:
    """Every `sample_every` seconds until the runs are drained (or the deadline): (time, RSS of
    the render processes, RSS of the Celery parent), and (time, CPU seconds of the worker's
    processes)."""
    samples: list[tuple[float, int, int]] = []
    cpu_samples: list[tuple[float, float]] = []
    while time.monotonic() < deadline:
        children = render_children(worker)
        try:
            parent = psutil.Process(worker.pid).memory_info().rss
            child = sum(c.memory_info().rss for c in children)
        except psutil.NoSuchProcess:
            raise RuntimeError("drain worker died:\n" + worker.log()[-2000:])
        samples.append((time.time(), child, parent))
        cpu_samples.append((time.time(), _cpu_seconds(worker)))
        # Drained when the last run and the middle one are final: two looks, not one per run.
        with redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys[-1], "status")
            pipe.hget(keys[len(keys) // 2], "status")
            last, middle = pipe.execute()
        if last in FINAL and middle in FINAL:
            break
        time.sleep(sample_every)
    return samples, cpu_samples


def _drain_figures(
    count: int, measured: int, runs: list[dict], samples: list[tuple[float, int, int]], cpu_samples: list[tuple[float, float]]
) -> dict:
    """What `drain` returns, from the drained runs' records and the samples taken meanwhile."""
    completed = sorted(r["completed_at"] for r in runs if r.get("status") == "completed")
    if len(completed) != count:
        raise RuntimeError(f"only {len(completed)} of {count} drained runs completed")
    first_start = min(r["started_at"] for r in runs)
    by_completion = sorted(runs, key=lambda r: r["completed_at"])
    window = by_completion[:measured]
    span = window[-1]["completed_at"] - first_start
    jobs_done = [bisect.bisect_right(completed, t) for t, _, _ in samples]
    # CPU per image over the measured window (from the sample after the first completion to
    # the one after the last measured one): contention from other processes does not inflate it.
    cpu_done = [(bisect.bisect_right(completed, t), cpu) for t, cpu in cpu_samples]
    start = next((done, cpu) for done, cpu in cpu_done if done >= 1)
    stop = next((done, cpu) for done, cpu in cpu_done if done >= measured)
    images_per_cpu_second = (stop[0] - start[0]) / (stop[1] - start[1]) if stop[1] > start[1] else float("nan")

    def rss_at(job: int, which: int) -> int:
        return next(sample[which] for sample, done in zip(samples, jobs_done) if done >= job)

    early = max(1, min(100, count // 5))
    return {
        "jobs": count,
        "measured": measured,
        "images_per_second": measured / span,
        "images_per_cpu_second": images_per_cpu_second,
        "inference_share": sum(r["timings"]["inference_seconds"] for r in window) / span,
        "all_images_per_second": count / (completed[-1] - first_start),
        "inference_median": median([r["timings"]["inference_seconds"] for r in window]),
        "rss_samples": [(done, child, parent) for (_, child, parent), done in zip(samples, jobs_done)],
        "rss_job": early,
        "rss_child_at_early": rss_at(early, 1),
        "rss_child_at_end": samples[-1][1],
        "rss_parent_at_early": rss_at(early, 2),
        "rss_parent_at_end": samples[-1][2],
    }


def scaling(infra: Infra, worker_counts: tuple[int, ...], jobs_per_worker: int, step_seconds: float) -> dict:
    """N workers on a pipeline that sleeps (no CPU), draining the same queue."""
    model = f"sleep:{step_seconds}"
    stack = infra.stack("scaling", RENDERQ_DEFAULT_MODEL=model)
    job = TINY_JOB | {"num_inference_steps": 2}
    results = {}
    try:
        stack.api()
        with stack.client() as client:
            for workers in worker_counts:
                while len(stack.workers) < workers:
                    stack.worker(f"scale{len(stack.workers) + 1}")
                count = jobs_per_worker * workers
                run_ids = submit_many(client, count, job)
                runs = wait_drained(stack, run_ids, 60 + count * 2 * step_seconds * 2)
                begin = min(r["started_at"] for r in runs)
                end = max(r["completed_at"] for r in runs)
                done = sum(r.get("status") == "completed" for r in runs)
                results[workers] = {"jobs": count, "completed": done, "seconds": end - begin, "jobs_per_second": done / (end - begin)}
    finally:
        stack.stop()
    one = results[worker_counts[0]]["jobs_per_second"]
    for value in results.values():
        value["ratio"] = value["jobs_per_second"] / one
    return {"model": model, "job_seconds": 2 * step_seconds, "workers": results}


def _cpu_seconds(worker) -> float:
    """User + system CPU seconds of a worker's parent, pool and finisher processes."""
    try:
        processes = [psutil.Process(worker.pid), *render_children(worker), *finisher_processes(worker)]
        return sum(sum(p.cpu_times()[:2]) for p in processes)
    except psutil.NoSuchProcess:
        return float("nan")


_LOADED = re.compile(r"model \S+ loaded in ([0-9.]+)s")


def cold_start(infra: Infra, repeats: int) -> dict:
    """Worker process start → first job done; model loading read from the worker's log."""
    stack = infra.stack("cold", RENDERQ_LOG_LEVEL="INFO")
    trials = []
    try:
        stack.api()
        with stack.client() as client:
            for i in range(repeats):
                run_id = submit_many(client, 1, TINY_JOB)[0]
                began = time.time()
                worker = stack.worker(f"cold{i}", wait=False)
                ready_at = None
                while True:
                    log = worker.log()
                    if ready_at is None and " ready." in log:
                        ready_at = time.time()
                    run = client.get(f"/v1/generations/{run_id}").json()
                    if run["status"] in FINAL:
                        break
                    if not worker.alive():
                        raise RuntimeError("cold-start worker died:\n" + log[-2000:])
                    time.sleep(0.02)
                record = records(stack, [run_id])[0]
                loaded = _LOADED.search(worker.log())
                trials.append({
                    "to_ready": (ready_at or time.time()) - began,
                    "to_claim": record["started_at"] - began,
                    "to_done": record["completed_at"] - began,
                    "model_load": float(loaded.group(1)) if loaded else float("nan"),
                    "job_seconds": record["completed_at"] - record["started_at"],
                })
                worker.stop()
                stack.workers.remove(worker)
                stack.procs.remove(worker)
    finally:
        stack.stop()
    return {"trials": trials, "median": {key: median([t[key] for t in trials]) for key in trials[0]}}
