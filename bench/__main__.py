"""`python -m bench [--quick] [--only overhead,drain,...] [--device cuda]`: run the benchmarks,
print the figures, write BENCHMARKS.md, its plots and raw results.

`--only` runs a subset and merges it into the last results (bench/results/results.json), so the
report keeps every other section's figures, each saying which run it is from.

Everything runs on the real stack this command starts (redis-server, `weed mini`, Celery
workers, the API) and stops again; nothing else needs to be running. `--device cuda` runs the
measurements that render with the workers and the bare pipeline on the GPU and writes them as
a section of their own (bench/gpu.py); without a CUDA device it refuses (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .api_keys import api_keys
from .api_load import api_load
from .batching import backlog, mixed
from .estimates import estimates
from .identical import identical
from .pools import pools
from .previews import EVERY as PREVIEW_EVERY, preview_cost
from .render_cpu import render_cpu
from .report import write_report
from .results_store import code_state, load_previous, merge
from .service import bare_pipeline, cold_start, drain, overhead, scaling
from .stack import TINY_JOB, Infra

# In the order they run; each has its runner in `_RUNNERS` below. Issue 12's five: micro-batching
# under a backlog, a mixed backlog, render-process CPU per image, batched images against the same
# requests alone, and the API with keys on; then issue 14's worker pools and issue 15's live previews.
SECTIONS = ("bare", "overhead", "drain", "medium", "scaling", "api", "cold", "backlog", "mixed", "cpu", "identical", "keys",
            "pools", "previews", "estimates")
# The ones a device changes: scaling runs the sleep pipeline, api no worker at all.
GPU_SECTIONS = ("bare", "overhead", "drain", "medium", "cold")
# A larger job for the throughput ratio: shows how the fixed per-job cost fades with job size.
MEDIUM_JOB = TINY_JOB | {"width": 128, "height": 128, "num_inference_steps": 8}


@dataclass(frozen=True)
class Sizes:
    bare_jobs: int
    overhead_jobs: int
    drain_jobs: int
    throughput_jobs: int
    scaling_jobs_per_worker: int
    scaling_step_seconds: float
    api_seconds: float
    api_connections: int
    cold_repeats: int
    medium_jobs: int
    medium_bare_jobs: int
    backlog_jobs: int  # queued for one worker, batching on and off
    backlog_rounds: int
    backlog_bare_jobs: int  # per bare loop (one per call, 8 per call); a multiple of 8
    mixed_jobs: int
    mixed_rounds: int
    mixed_bare_jobs: int  # a multiple of the 4 shapes
    cpu_jobs: int
    cpu_rounds: int
    identical_jobs: int  # a multiple of 8
    keys_seconds: float
    keys_rounds: int
    pools_jobs: int = 200  # runs per pool of the two-pool backlog
    pools_burst: int = 200  # runs queued before a fresh worker starts
    previews_rounds: int = 16  # renders with and without live previews, alternating (issue 15)
    estimates_jobs: int = 32  # runs of the estimate mix, alone and again in queues (issue 13)


FULL = Sizes(150, 150, 500, 300, 30, 0.1, 10, 8, 3, 40, 15,
             backlog_jobs=300, backlog_rounds=2, backlog_bare_jobs=160, mixed_jobs=300, mixed_rounds=2, mixed_bare_jobs=120,
             cpu_jobs=100, cpu_rounds=2, identical_jobs=16, keys_seconds=8, keys_rounds=2)
QUICK = Sizes(30, 30, 100, 60, 8, 0.1, 3, 8, 1, 8, 4,
              backlog_jobs=48, backlog_rounds=1, backlog_bare_jobs=32, mixed_jobs=48, mixed_rounds=1, mixed_bare_jobs=24,
              cpu_jobs=20, cpu_rounds=1, identical_jobs=16, keys_seconds=3, keys_rounds=1, pools_jobs=40, pools_burst=200,
              previews_rounds=4, estimates_jobs=16)


@dataclass(frozen=True)
class Options:
    quick: bool
    sizes: Sizes
    only: list[str]
    out: Path
    device: str  # "cpu" or "cuda"


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    results: dict = {"quick": options.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if options.device == "cuda":
        from .gpu import cuda_device, gpu_settings

        device = cuda_device()
        if device is None:
            print("python -m bench --device cuda: no CUDA device here (torch.cuda.is_available() is False); "
                  "run it on a machine with an NVIDIA GPU and CUDA torch", file=sys.stderr)
            return 2
        results["gpu"] = device | {"settings": gpu_settings()}
    results["code"] = code_state(Path(__file__).resolve().parents[1])  # after any refusal: it runs git
    began = time.monotonic()
    # The overhead is read against the bare pipeline, so it brings that along.
    ran = [name for name in SECTIONS if name in options.only or (name == "bare" and "overhead" in options.only)]
    with tempfile.TemporaryDirectory(prefix="renderq-bench-") as tmp:
        workdir = Path(tmp)
        from devkit.tiny_model import build_tiny_model

        print("building the tiny model …", flush=True)
        tiny = str(build_tiny_model(workdir / "tiny-model"))
        infra = Infra(workdir=workdir, tiny_model=tiny, device=options.device).start()
        try:
            for name in ran:
                _RUNNERS[name](infra, options.sizes, results)
        finally:
            infra.stop()
    results["seconds"] = time.monotonic() - began
    if options.device == "cuda":
        from .gpu import write_gpu_report

        write_gpu_report(results, options.out)
    else:
        # A partial run keeps the other sections' figures from the last results.
        previous = load_previous(options.out) if set(ran) != set(SECTIONS) else {}
        write_report(merge(previous, results, ran), options.out)
    print(f"wrote {options.out} in {results['seconds']:.0f}s total")
    return 0


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in about two minutes")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SECTIONS)} (with --device cuda: of {','.join(GPU_SECTIONS)})")
    parser.add_argument("--out", default="BENCHMARKS.md", help="report to write (plots go to bench/results/ next to it)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where workers and the bare pipeline render; cuda writes the report's GPU section")
    args = parser.parse_args(argv)
    allowed = GPU_SECTIONS if args.device == "cuda" else SECTIONS
    only = [name.strip() for name in args.only.split(",") if name.strip()] or list(allowed)
    unknown = set(only) - set(allowed)
    if unknown:
        parser.error(f"unknown sections{' on cuda' if args.device == 'cuda' else ''}: {', '.join(sorted(unknown))}")
    return Options(args.quick, QUICK if args.quick else FULL, only, Path(args.out), args.device)


# Each section runs its benchmark on the started stack, stores its figures in `results` under
# its name (the report reads them from there) and prints the headline figures as it goes.


def _run_bare(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"bare pipeline: {sizes.bare_jobs} tiny jobs in one process …", flush=True)
    results["bare"] = bare_pipeline(infra, sizes.bare_jobs)
    print(f"  median {results['bare']['median'] * 1000:.1f} ms", flush=True)


def _run_overhead(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"overhead: {sizes.overhead_jobs} tiny jobs through the service, one at a time …", flush=True)
    results["overhead"] = o = overhead(infra, sizes.overhead_jobs)
    _print_summary(o["summary"])
    print(f"  overhead median {o['summary']['overhead']['median'] * 1000:.1f} ms (target ≤ 8 ms)", flush=True)
    if "bare" in results:
        extra = o["client_png"]["median"] - results["bare"]["median"]
        print(f"  client: submit → PNG bytes {o['client_png']['median'] * 1000:.1f} ms median, bare pipeline {results['bare']['median'] * 1000:.1f} ms: "
              f"{extra * 1000:+.1f} ms (target ≤ +10 ms)", flush=True)
        waited = o["client_waited_png"]["median"] - results["bare"]["median"]
        print(f"  client waiting in its submit (Prefer: wait): {o['client_waited_png']['median'] * 1000:.1f} ms median: "
              f"{waited * 1000:+.1f} ms (target ≤ +10 ms)", flush=True)


def _run_drain(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"throughput + memory: {sizes.drain_jobs} queued jobs drained by one worker …", flush=True)
    results["bare_before_drain"] = bare_pipeline(infra, sizes.bare_jobs)
    results["drain"] = drain(infra, sizes.drain_jobs, sizes.throughput_jobs)
    d = results["drain"]
    print(f"  {d['images_per_second']:.1f} images/s ({d['images_per_cpu_second']:.1f} per worker CPU-second, inference share {d['inference_share']:.2f}); render process RSS {d['rss_child_at_early'] / 2**20:.0f} → {d['rss_child_at_end'] / 2**20:.0f} MiB", flush=True)
    # The machine is shared: measure the bare pipeline again right after, so the
    # ratio compares the drain with the mean of the runs either side of it.
    results["bare_after"] = bare_pipeline(infra, sizes.bare_jobs)
    print(f"  bare pipeline again: median {results['bare_after']['median'] * 1000:.1f} ms", flush=True)


def _run_medium(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"throughput, larger job (128×128, 8 steps): {sizes.medium_jobs} queued jobs …", flush=True)
    medium = {"job": MEDIUM_JOB, "bare_before": bare_pipeline(infra, sizes.medium_bare_jobs, MEDIUM_JOB)}
    medium["drain"] = drain(infra, sizes.medium_jobs, sizes.medium_jobs, job=MEDIUM_JOB)
    medium["bare_after"] = bare_pipeline(infra, sizes.medium_bare_jobs, MEDIUM_JOB)
    bare_ips = (medium["bare_before"]["images_per_second"] + medium["bare_after"]["images_per_second"]) / 2
    bare_cpu = (medium["bare_before"]["images_per_cpu_second"] + medium["bare_after"]["images_per_cpu_second"]) / 2
    medium["ratio"] = medium["drain"]["images_per_second"] / bare_ips
    medium["cpu_ratio"] = medium["drain"]["images_per_cpu_second"] / bare_cpu
    results["medium"] = medium
    print(f"  {medium['drain']['images_per_second']:.2f} images/s vs bare {bare_ips:.2f}: ×{medium['ratio']:.2f} (per CPU-second ×{medium['cpu_ratio']:.2f})", flush=True)


def _run_scaling(infra: Infra, sizes: Sizes, results: dict) -> None:
    print("scaling: 1, 2, 4 workers on the sleep pipeline …", flush=True)
    results["scaling"] = scaling(infra, (1, 2, 4), sizes.scaling_jobs_per_worker, sizes.scaling_step_seconds)
    for n, value in results["scaling"]["workers"].items():
        print(f"  {n} workers: {value['jobs_per_second']:.2f} jobs/s (×{value['ratio']:.2f})", flush=True)


def _run_api(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"API load: wrk, {sizes.api_connections} connections, {sizes.api_seconds:g}s per endpoint …", flush=True)
    results["api"] = api_load(infra, sizes.api_seconds, sizes.api_connections)
    for name in ("submit", "status_completed", "status_queued", "floor"):
        v = results["api"][name]
        print(f"  {name}: {v['per_second']:.0f}/s ({v['per_cpu_second']:.0f} per API CPU-second) p50 {v['p50_ms']:.1f} ms p99 {v['p99_ms']:.1f} ms non-2xx {v['non_2xx']}", flush=True)


def _run_cold(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"cold start: {sizes.cold_repeats} worker start(s) …", flush=True)
    results["cold"] = cold_start(infra, sizes.cold_repeats)
    print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in results["cold"]["median"].items()), flush=True)


def _run_backlog(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"backlog: {sizes.backlog_jobs} queued tiny jobs, one worker, batching on and off, {sizes.backlog_rounds} round(s) …", flush=True)
    results["backlog"] = b = backlog(infra, sizes.backlog_jobs, sizes.backlog_rounds, sizes.backlog_bare_jobs)
    r = b["ratios"]
    print(f"  batching on {b['batched']['images_per_second']:.1f} images/s: ×{r['batched_vs_one']:.2f} bare one at a time "
          f"(target ≥ 2.5×), ×{r['batched_vs_eight']:.2f} bare 8 per call (target ≥ 0.8×); batching off ×{r['unbatched_vs_one']:.2f}", flush=True)


def _run_mixed(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"mixed backlog: {sizes.mixed_jobs} jobs of 4 shapes, {sizes.mixed_rounds} round(s) …", flush=True)
    results["mixed"] = m = mixed(infra, sizes.mixed_jobs, sizes.mixed_rounds, sizes.mixed_bare_jobs)
    print(f"  {m['service']['images_per_second']:.1f} images/s vs bare one at a time {m['bare']['images_per_second']:.1f}: "
          f"×{m['ratio']:.2f} (target ≥ 1.8×)", flush=True)


def _run_cpu(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"render-process CPU: {sizes.cpu_jobs} jobs one at a time, {sizes.cpu_rounds} round(s) …", flush=True)
    results["cpu"] = c = render_cpu(infra, sizes.cpu_jobs, sizes.cpu_rounds)
    print(f"  render process {c['render_cpu_ms']:.2f} ms CPU per image vs bare {c['bare_cpu_ms']:.2f} ms: "
          f"×{c['ratio']:.2f} (target ≤ 1.15×); Celery parent {c['parent_cpu_ms']:.2f} ms", flush=True)


def _run_identical(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"identical: {sizes.identical_jobs} batched runs against the same requests alone …", flush=True)
    results["identical"] = i = identical(infra, sizes.identical_jobs)
    for key in ("service_vs_alone", "together_vs_alone", "service_vs_together"):
        v = i[key]
        print(f"  {key}: largest difference {v['largest']} (of 255), {v['images_differing']} of {v['images']} images differ", flush=True)


def _run_keys(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"API keys on vs off: wrk, {sizes.api_connections} connections, {sizes.keys_seconds:g}s a run, {sizes.keys_rounds} round(s) …", flush=True)
    results["keys"] = k = api_keys(infra, sizes.keys_seconds, sizes.api_connections, sizes.keys_rounds)
    for endpoint, cost in k["cost"].items():
        on, off = k["on"][endpoint], k["off"][endpoint]
        print(f"  {endpoint}: keys on {on['per_second']:.0f}/s ({on['per_cpu_second']:.0f} per CPU-s, p99 {on['p99_ms']:.1f} ms, non-2xx {on['non_2xx']}), "
              f"off {off['per_second']:.0f}/s ({off['per_cpu_second']:.0f}); a key costs {cost['cpu_us_per_request']:.0f} µs of API CPU", flush=True)


def _run_pools(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"worker pools: 2 pools × 2 workers, {2 * sizes.pools_jobs} queued runs; then {sizes.pools_burst} runs for a fresh worker …", flush=True)
    results["pools"] = p = pools(infra, sizes.pools_jobs, sizes.pools_burst)
    for pool, v in p["pools"].items():
        print(f"  pool {pool}: {v['images_per_second']:.1f} images/s ({v['runs']} runs, {v['wrong_pool']} on another pool's worker)", flush=True)
    for name, entry in sorted(p["loads"].items()):
        print(f"  {name} (pool {entry['pool']}): loads {entry['models']}", flush=True)
    b = p["burst"]
    print(f"  fresh worker, {b['runs']} queued: first render done {b['to_first_completed']:.2f}s after its start "
          f"(ready {b['to_ready']:.2f}s, model load {b['model_load'] or float('nan'):.2f}s)", flush=True)


def _run_previews(infra: Infra, sizes: Sizes, results: dict) -> None:
    print(f"live previews: {sizes.previews_rounds} renders with and without a preview every {PREVIEW_EVERY} steps …", flush=True)
    results["previews"] = p = preview_cost(infra, sizes.previews_rounds)
    print(f"  with ÷ without, round by round ×{p['paired_ratio']:.3f} (target ≤ 1.05×; medians {p['median_on'] * 1000:.0f} "
          f"vs {p['median_off'] * 1000:.0f} ms: ×{p['ratio']:.3f}; CPU ×{p['cpu_ratio']:.3f}); a preview: "
          + ", ".join(f"{k} {v:.2f} ms" for k, v in p["parts_ms"].items() if k in ("decode", "encode", "publish"))
          + f"; render thread {p['render_thread_ms']:.1f} ms a render", flush=True)


def _run_estimates(infra: Infra, sizes: Sizes, results: dict) -> None:
    from devkit.tiny_catalog import build_tiny_catalog

    print(f"estimates: {sizes.estimates_jobs} runs of four operations alone, then in queues of 4 …", flush=True)
    catalog = build_tiny_catalog(infra.tiny_model, infra.workdir / "tiny-catalog")
    results["estimates"] = e = estimates(infra, sizes.estimates_jobs, str(catalog))
    print(f"  estimates within ±50 % of the real time: {e['within']:.0%} (target ≥ 90 %; alone {e['alone_within']:.0%}, "
          f"queued {e['queued_within']:.0%})", flush=True)
    for row in e["alone"] + e["queued"]:
        print(f"    {row['operation']:18s} {row['width']}px {row['steps']} steps: estimated {row['estimated']:.3f}s real {row['real']:.3f}s "
              f"ahead {row.get('position')} {row.get('timings')}", flush=True)


_RUNNERS = {
    "bare": _run_bare,
    "overhead": _run_overhead,
    "drain": _run_drain,
    "medium": _run_medium,
    "scaling": _run_scaling,
    "api": _run_api,
    "cold": _run_cold,
    "backlog": _run_backlog,
    "mixed": _run_mixed,
    "cpu": _run_cpu,
    "identical": _run_identical,
    "keys": _run_keys,
    "pools": _run_pools,
    "previews": _run_previews,
    "estimates": _run_estimates,
}


def _print_summary(summary: dict) -> None:
    for name, value in summary.items():
        print(f"  {name:16s} median {value['median'] * 1000:7.1f} ms   p90 {value['p90'] * 1000:7.1f} ms", flush=True)


if __name__ == "__main__":
    sys.exit(main())
