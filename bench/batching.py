"""Micro-batching under a backlog: one worker drains queued tiny jobs with batching on (up to 8
runs per model call, the default) and off (RENDERQ_MAX_BATCH=1), and a mixed backlog of two
sizes and two step counts; each against the bare pipeline (bench/bare_loop.py) run one request
at a time and 8 requests per call, in the same run, interleaved round by round so that each
service figure has bare figures a few seconds either side of it."""

from __future__ import annotations

import bisect
import time
from collections import Counter

from .bare_loop import BareProcess
from .service import _cpu_seconds, _sample_while_draining
from .stack import TINY_JOB, Infra, Stack, numbered, submit_batch, wait_drained

BATCH = 8  # RENDERQ_MAX_BATCH's default: runs per model call, and the bare loop's requests per call
# The mixed backlog's (side, steps), in the order its jobs cycle through them.
MIXED_SHAPES = ((64, 2), (128, 4), (64, 4), (128, 2))


def bare_process(infra: Infra, name: str) -> BareProcess:
    """The bare pipeline in a process of its own, with the workers' environment (one torch thread)."""
    return BareProcess(infra.tiny_model, infra.stack(f"bare-{name}").env, infra.workdir / f"bare-{name}.log")


def drain_backlog(stack: Stack, jobs: list[dict], name: str, warmup: list[dict]) -> dict:
    """Start one worker (the stack's RENDERQ_MAX_BATCH), let it render `warmup` (torch's first
    calls at each shape and batch size, which a worker serving for a while has long made, as the
    bare loop has), then queue `jobs` in one POST /v1/batches (one transaction: the whole
    backlog at once) and let it drain them; the worker is stopped after."""
    worker = stack.worker(name, wait=False)
    with stack.client() as client:
        wait_drained(stack, submit_batch(client, warmup), 180)
        run_ids = submit_batch(client, jobs)
    try:
        keys = [f"renderq:run:{run_id}" for run_id in run_ids]
        _, cpu_samples = _sample_while_draining(worker, stack.redis(), keys, time.monotonic() + 180 + len(jobs), 0.2)
        runs = wait_drained(stack, run_ids, 60)
        cpu_samples.append((time.time(), _cpu_seconds(worker)))
    finally:
        stack.drop(worker)
    return drain_figures(jobs, runs, cpu_samples)


def drain_figures(jobs: list[dict], runs: list[dict], cpu_samples: list[tuple[float, float]]) -> dict:
    """Throughput from the first claim to the last completion; CPU of the worker's processes per
    image from the first completion on (model loading before it does not count); how many runs
    shared each model call (`timings.batch_size`), overall and per shape."""
    failed = [r for r in runs if r.get("status") != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(runs)} backlog runs did not complete: {failed[0]}")
    span = max(r["completed_at"] for r in runs) - min(r["started_at"] for r in runs)
    completed = sorted(r["completed_at"] for r in runs)
    done_cpu = [(bisect.bisect_right(completed, t), cpu) for t, cpu in cpu_samples]
    start = next(((done, cpu) for done, cpu in done_cpu if done >= 1), done_cpu[-1])
    stop = done_cpu[-1]
    sizes = [int(r["timings"].get("batch_size", 1)) for r in runs]
    calls: Counter = Counter()
    count: Counter = Counter()
    for job, size in zip(jobs, sizes):
        shape = shape_name(job)
        calls[shape] += 1 / size
        count[shape] += 1
    return {
        "jobs": len(runs),
        "seconds": span,
        "images_per_second": len(runs) / span,
        "cpu_seconds": stop[1] - start[1],
        "images_per_cpu_second": (stop[0] - start[0]) / (stop[1] - start[1]) if stop[1] > start[1] else float("nan"),
        "model_calls": round(sum(calls.values())),
        "mean_batch": len(runs) / sum(calls.values()),
        "batch_sizes": {str(size): n for size, n in sorted(Counter(sizes).items())},
        "model_call_share": sum(r["timings"]["inference_seconds"] / s for r, s in zip(runs, sizes)) / span,
        "mean_batch_by_shape": {shape: count[shape] / calls[shape] for shape in count},
    }


def shape_name(job: dict) -> str:
    return f"{job['width']}×{job['height']} at {job['num_inference_steps']} steps"


def backlog(infra: Infra, count: int, rounds: int, bare_count: int) -> dict:
    """`count` tiny jobs drained by one worker, batching on and off, `rounds` times each (the
    order alternating); the bare loop one at a time and 8 per call before and after each round."""
    jobs, bare_jobs = numbered(TINY_JOB, count), numbered(TINY_JOB, bare_count)
    stacks = {"batched": infra.stack("backlog-batched"), "unbatched": infra.stack("backlog-unbatched", RENDERQ_MAX_BATCH=1)}
    runs: dict[str, list[dict]] = {"one": [], "eight": [], "batched": [], "unbatched": []}
    try:
        for stack in stacks.values():
            stack.api()
        with bare_process(infra, "backlog") as bare:
            bare.render(bare_jobs[:BATCH], BATCH)  # warm-up: the first call at the batch's shapes
            _bare_pair(bare, bare_jobs, runs)
            for r in range(rounds):
                for kind in ("batched", "unbatched") if r % 2 == 0 else ("unbatched", "batched"):
                    runs[kind].append(drain_backlog(stacks[kind], jobs, f"{kind}{r}", numbered(TINY_JOB, 2 * BATCH, 900)))
                    d = runs[kind][-1]
                    print(f"  {kind}: {d['images_per_second']:.1f} images/s, {d['mean_batch']:.2f} runs per model call", flush=True)
                _bare_pair(bare, bare_jobs, runs)
    finally:
        for stack in stacks.values():
            stack.stop()
    return backlog_figures(runs, count)


def _bare_pair(bare: BareProcess, jobs: list[dict], runs: dict) -> None:
    runs["one"].append(bare.render(jobs, 1))
    runs["eight"].append(bare.render(jobs, BATCH))
    print(f"  bare: one at a time {runs['one'][-1]['images_per_second']:.1f} images/s, "
          f"{BATCH} per call {runs['eight'][-1]['images_per_second']:.1f} images/s", flush=True)


def pooled(values: list[dict], images: str = "images", seconds: str = "seconds", cpu: str = "cpu_seconds") -> dict:
    """Images/s and images per CPU-second over several runs together (total ÷ total)."""
    made, cpu_seconds = sum(v[images] for v in values), sum(v[cpu] for v in values)
    return {
        "images_per_second": made / sum(v[seconds] for v in values),
        "images_per_cpu_second": made / cpu_seconds if cpu_seconds > 0 else float("nan"),
    }


def bracketed(drains: list[dict], bare: list[dict]) -> list[float]:
    """Each drain's images/s ÷ the mean of the bare runs right before and right after it
    (drain i sits between bare runs i and i + 1)."""
    return [d["images_per_second"] / ((bare[i]["images_per_second"] + bare[i + 1]["images_per_second"]) / 2)
            for i, d in enumerate(drains)]


def backlog_figures(runs: dict[str, list[dict]], count: int) -> dict:
    """Pooled figures per kind and the ratios the targets read."""
    figures = {"jobs": count, "rounds": len(runs["batched"]), "bare_jobs": runs["one"][0]["images"], "batch": BATCH}
    for kind in ("one", "eight"):
        figures[f"bare_{kind}"] = pooled(runs[kind]) | {"runs": runs[kind]}
    for kind in ("batched", "unbatched"):
        drains = runs[kind]
        figures[kind] = pooled(drains, images="jobs") | {
            "mean_batch": sum(d["jobs"] for d in drains) / sum(d["model_calls"] for d in drains),
            "model_call_share": sum(d["model_call_share"] * d["seconds"] for d in drains) / sum(d["seconds"] for d in drains),
            "drains": drains,
        }
        # A drain's CPU counts from its first completion; its images/CPU-s is taken drain by drain.
        figures[kind]["images_per_cpu_second"] = _mean([d["images_per_cpu_second"] for d in drains])
    batched, unbatched = figures["batched"], figures["unbatched"]
    one, eight = figures["bare_one"], figures["bare_eight"]
    # Wall-clock ratios round by round (each drain against the bare runs either side of it),
    # then their mean: the machine's load drifts between rounds, and a pooled ratio would weigh
    # a drain against bare runs minutes away. CPU-second ratios do not drift: pooled.
    figures["round_ratios"] = rounds = {
        "batched_vs_one": bracketed(runs["batched"], runs["one"]),
        "batched_vs_eight": bracketed(runs["batched"], runs["eight"]),
        "unbatched_vs_one": bracketed(runs["unbatched"], runs["one"]),
        "batched_vs_unbatched": [b["images_per_second"] / u["images_per_second"] for b, u in zip(runs["batched"], runs["unbatched"])],
        "eight_vs_one": [e["images_per_second"] / o["images_per_second"] for e, o in zip(runs["eight"], runs["one"])],
    }
    figures["ratios"] = {name: _mean(values) for name, values in rounds.items()} | {
        "cpu_batched_vs_eight": batched["images_per_cpu_second"] / eight["images_per_cpu_second"],
        "cpu_batched_vs_one": batched["images_per_cpu_second"] / one["images_per_cpu_second"],
        "cpu_unbatched_vs_one": unbatched["images_per_cpu_second"] / one["images_per_cpu_second"],
    }
    return figures


def mixed_jobs(count: int, first_seed: int = 2000) -> list[dict]:
    """`count` jobs cycling through MIXED_SHAPES, each with its own seed."""
    return [TINY_JOB | {"width": side, "height": side, "num_inference_steps": steps, "seed": first_seed + i}
            for i, (side, steps) in ((i, MIXED_SHAPES[i % len(MIXED_SHAPES)]) for i in range(count))]


def mixed(infra: Infra, count: int, rounds: int, bare_count: int) -> dict:
    """A backlog of the mixed jobs drained by one worker (batching on), against the bare loop one
    request at a time over the same mix, before and after each drain."""
    jobs, bare_jobs = mixed_jobs(count), mixed_jobs(bare_count)
    stack = infra.stack("mixed")
    bare_runs: list[dict] = []
    drains: list[dict] = []
    try:
        stack.api()
        with bare_process(infra, "mixed") as bare:
            bare.render(mixed_jobs(len(MIXED_SHAPES)))  # warm-up: each shape's first call
            bare_runs.append(bare.render(bare_jobs))
            for r in range(rounds):
                drains.append(drain_backlog(stack, jobs, f"mixed{r}", mixed_jobs(BATCH * len(MIXED_SHAPES), 1900)))
                bare_runs.append(bare.render(bare_jobs))
                print(f"  mixed: {drains[-1]['images_per_second']:.1f} images/s ({drains[-1]['mean_batch']:.2f} runs per call), "
                      f"bare one at a time {bare_runs[-1]['images_per_second']:.1f} images/s", flush=True)
    finally:
        stack.stop()
    service, bare = pooled(drains, images="jobs"), pooled(bare_runs)
    return {
        "jobs": count, "rounds": rounds, "bare_jobs": bare_count,
        "shapes": [shape_name({"width": side, "height": side, "num_inference_steps": steps}) for side, steps in MIXED_SHAPES],
        "service": service | {"drains": drains, "images_per_cpu_second": _mean([d["images_per_cpu_second"] for d in drains])},
        "bare": bare | {"runs": bare_runs},
        "ratio": _mean(bracketed(drains, bare_runs)),  # as the backlog's: round by round, then the mean
        "round_ratios": bracketed(drains, bare_runs),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
