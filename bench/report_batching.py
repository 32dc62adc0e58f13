"""BENCHMARKS.md rows and sections of issue 12's measurements: micro-batching under a backlog
(batching on and off), a mixed backlog, render-process CPU per image, batched images against the
same requests rendered alone, and the API with keys on. Each reads its figures from the results
dict under its section's name and is absent when that section did not run."""

from __future__ import annotations

from collections import Counter

from .report_format import at_least, at_most, fmt, ratio_text, rounds_text

Row = tuple[str, str, str, bool | None]
KEY_ENDPOINTS = (("submit", "submissions", 1000), ("status_completed", "status reads (completed run, signed URL)", 3000),
                 ("status_queued", "status reads (queued run)", 3000))


def batching_rows(results: dict) -> list[Row]:
    return backlog_rows(results) + mixed_rows(results) + cpu_rows(results) + identical_rows(results) + keys_rows(results)


def backlog_rows(results: dict) -> list[Row]:
    b = results.get("backlog")
    if not b:
        return []
    r, rounds, batched, unbatched = b["ratios"], b["round_ratios"], b["batched"], b["unbatched"]
    one, eight = b["bare_one"]["images_per_second"], b["bare_eight"]["images_per_second"]
    return [
        (f"Backlog of {b['jobs']} tiny jobs, one worker, batching on (≤ {b['batch']} runs per call) ÷ bare pipeline one request at a time",
         "≥ 2.5×", rounds_text(r["batched_vs_one"], rounds["batched_vs_one"], batched["images_per_second"], one, " img/s"),
         at_least(r["batched_vs_one"], 2.5)),
        (f"  same ÷ bare pipeline, {b['batch']} requests per call", "≥ 0.8×",
         rounds_text(r["batched_vs_eight"], rounds["batched_vs_eight"], batched["images_per_second"], eight, " img/s"),
         at_least(r["batched_vs_eight"], 0.8)),
        ("  same backlog, batching off (RENDERQ_MAX_BATCH=1) ÷ bare one at a time", "–",
         rounds_text(r["unbatched_vs_one"], rounds["unbatched_vs_one"], unbatched["images_per_second"], one, " img/s"), None),
        (f"  per CPU-second: batching on ÷ bare {b['batch']} per call / ÷ bare one at a time; batching off ÷ one at a time", "–",
         f"{fmt(r['cpu_batched_vs_eight'], '×', 2)} / {fmt(r['cpu_batched_vs_one'], '×', 2)}; {fmt(r['cpu_unbatched_vs_one'], '×', 2)}", None),
        ("  runs per model call (mean), model call's share of the drain's wall time", "–",
         f"{fmt(batched['mean_batch'], '', 2)}, {fmt(batched['model_call_share'], '', 2)}", None),
    ]


def mixed_rows(results: dict) -> list[Row]:
    m = results.get("mixed")
    if not m:
        return []
    return [(f"Mixed backlog ({', '.join(m['shapes'])}; interleaved, {m['jobs']} jobs) ÷ bare one at a time over the same mix",
             "≥ 1.8×", rounds_text(m["ratio"], m["round_ratios"], m["service"]["images_per_second"], m["bare"]["images_per_second"], " img/s"),
             at_least(m["ratio"], 1.8))]


def cpu_rows(results: dict) -> list[Row]:
    c = results.get("cpu")
    if not c:
        return []
    return [
        ("Render process CPU per image, one request at a time ÷ bare pipeline's", "≤ 1.15×",
         ratio_text(c["ratio"], c["render_cpu_ms"], c["bare_cpu_ms"], " ms"), at_most(c["ratio"], 1.15)),
        ("  with the Celery parent's CPU added", "–",
         ratio_text(c["with_parent_ratio"], c["render_cpu_ms"] + c["parent_cpu_ms"], c["bare_cpu_ms"], " ms"), None),
        *([("  the whole worker: render process + its finisher process + Celery parent", "–",
            ratio_text(c["worker_ratio"], c["render_cpu_ms"] + c["parent_cpu_ms"] + c["finisher_cpu_ms"], c["bare_cpu_ms"], " ms"),
            None)] if "worker_ratio" in c else []),
    ]


def identical_rows(results: dict) -> list[Row]:
    i = results.get("identical")
    if not i:
        return []
    s, t = i["service_vs_alone"], i["together_vs_alone"]
    return [("Batched runs' images vs the same requests rendered alone: largest channel difference (of 255)", "≤ 1 (0 ideal)",
             f"{s['largest']} ({s['images_differing']} of {s['images']} images differ; bare {i['bare_per_call']} per call vs alone: {t['largest']})",
             at_most(s["largest"], 1))]


def keys_rows(results: dict) -> list[Row]:
    k = results.get("keys")
    if not k:
        return []
    rows = []
    for endpoint, label, goal in KEY_ENDPOINTS:
        on, off, cost = k["on"][endpoint], k["off"][endpoint], k["cost"][endpoint]
        rows.append((f"API keys on, one API process: {label}/s, p99 (keys off beside it)", f"≥ {goal:,}/s, p99 ≤ 50 ms",
                     f"{fmt(on['per_second'], '/s', 0)}, {fmt(on['p99_ms'], ' ms')} (off: {fmt(off['per_second'], '/s', 0)}, ×{fmt(cost['wall_ratio'], '', 2)})",
                     on["per_second"] >= goal and on["p99_ms"] <= 50 and on["non_2xx"] == 0))
        rows.append(("  per CPU-second of the API process, keys on (off); a key's API CPU per request", "–",
                     f"{fmt(on['per_cpu_second'], '', 0)} ({fmt(off['per_cpu_second'], '', 0)}); {fmt(cost['cpu_us_per_request'], ' µs', 0)}", None))
    return rows


def batching_sections(results: dict) -> list[str]:
    return backlog_section(results) + mixed_section(results) + cpu_section(results) + identical_section(results) + keys_section(results)


def backlog_section(results: dict) -> list[str]:
    b = results.get("backlog")
    if not b:
        return []
    r, one, eight = b["ratios"], b["bare_one"]["images_per_second"], b["bare_eight"]["images_per_second"]
    lines = [
        "## 7. Micro-batching: one worker under a backlog",
        "",
        "One worker starts and renders 16 warm-up jobs (torch's first calls at the shape and batch size, as the",
        f"bare loop's warm-up); then {b['jobs']} tiny jobs (each its own seed) are queued in one POST /v1/batches (one",
        "transaction) and it drains them: from the first claim to the last completion. With batching on (the",
        f"default, RENDERQ_MAX_BATCH={b['batch']}) a worker that starts a run also claims up to {b['batch'] - 1} more queued runs of its",
        "render group and renders them in one diffusers call; with RENDERQ_MAX_BATCH=1 (API and worker) every",
        f"run renders alone. The bare pipeline (`bench/bare_loop.py`, one process, one torch thread, the",
        f"worker's `TextToImagePipeline` called with a list of jobs) renders {b['bare_jobs']} of the same jobs one request per",
        f"call and {b['batch']} per call. {b['rounds']} round(s), each draining the backlog batched and unbatched (the order",
        "alternating), with the bare loops run before the first round and after each: every drain has bare",
        "figures a few seconds either side of it. images/s and images per CPU-s are pooled over the rounds (all",
        "images ÷ all seconds); the wall-clock ratios are taken round by round (a drain ÷ the mean of the bare runs",
        "just before and after it) and averaged, since the machine's load drifts from round to round; the",
        "per-CPU-second ratios, which that load does not move, from the pooled figures.",
        "",
        "| | images/s | ÷ bare one at a time | ÷ bare 8 per call | images per CPU-s | runs per model call |",
        "|---|---|---|---|---|---|",
        f"| bare pipeline, one request per call | {fmt(one)} | 1.00× | {fmt(1 / r['eight_vs_one'], '×', 2)} | {fmt(b['bare_one']['images_per_cpu_second'])} | 1 |",
        f"| bare pipeline, {b['batch']} requests per call | {fmt(eight)} | {fmt(r['eight_vs_one'], '×', 2)} | 1.00× | {fmt(b['bare_eight']['images_per_cpu_second'])} | {b['batch']} |",
        f"| **worker, batching on (≤ {b['batch']})** | {fmt(b['batched']['images_per_second'])} | {fmt(r['batched_vs_one'], '×', 2)} | "
        f"{fmt(r['batched_vs_eight'], '×', 2)} | {fmt(b['batched']['images_per_cpu_second'])} | {fmt(b['batched']['mean_batch'], '', 2)} |",
        f"| **worker, batching off** | {fmt(b['unbatched']['images_per_second'])} | {fmt(r['unbatched_vs_one'], '×', 2)} | "
        f"{fmt(r['unbatched_vs_one'] / r['eight_vs_one'], '×', 2)} | {fmt(b['unbatched']['images_per_cpu_second'])} | {fmt(b['unbatched']['mean_batch'], '', 2)} |",
    ]
    rounds = b["round_ratios"]
    sizes: dict[str, int] = {}
    for drain in b["batched"]["drains"]:
        for size, n in drain["batch_sizes"].items():
            sizes[size] = sizes.get(size, 0) + n
    lines += [
        "",
        f"Round by round, each drain ÷ the bare runs either side of it: batching on ÷ one at a time {_list(rounds['batched_vs_one'])}, "
        f"÷ {b['batch']} per call {_list(rounds['batched_vs_eight'])}; batching off ÷ one at a time {_list(rounds['unbatched_vs_one'])}. "
        f"Batching on, all rounds: {calls_text(sizes)}. "
        f"Images per CPU-s of the worker count its Celery parent and render process from the first completion on.",
        "",
    ]
    return lines


def _list(values: list[float]) -> str:
    return ", ".join(fmt(v, "×", 2) for v in values) or "–"


def mixed_section(results: dict) -> list[str]:
    m = results.get("mixed")
    if not m:
        return []
    by_shape: dict[str, list[float]] = {}
    for drain in m["service"]["drains"]:
        for shape, mean in drain["mean_batch_by_shape"].items():
            by_shape.setdefault(shape, []).append(mean)
    lines = [
        "## 8. A mixed backlog",
        "",
        f"{m['jobs']} jobs cycling through {', '.join(m['shapes'])} (so neighbours in the queue never share a",
        "shape), queued in one POST /v1/batches and drained by one worker with batching on, warmed first by",
        "8 jobs of each shape (the bare loop by one of each); the worker batches",
        "runs of one shape (a render group: same size, steps, guidance, model, LoRAs, priority). Against the bare",
        f"pipeline one request at a time over the same mix ({m['bare_jobs']} jobs, same cycle), before and after each drain.",
        "",
        "| | images/s | images per CPU-s |",
        "|---|---|---|",
        f"| bare pipeline, one request per call | {fmt(m['bare']['images_per_second'])} | {fmt(m['bare']['images_per_cpu_second'])} |",
        f"| **worker, batching on** | {fmt(m['service']['images_per_second'])} | {fmt(m['service']['images_per_cpu_second'])} |",
        f"| **ratio** | {fmt(m['ratio'], '×', 2)} | {fmt(m['service']['images_per_cpu_second'] / m['bare']['images_per_cpu_second'], '×', 2)} |",
        "",
        f"The wall-clock ratio is the mean of the rounds' (each drain ÷ the bare runs either side of it): {_list(m['round_ratios'])}. "
        "Runs per model call by shape: "
        + ", ".join(f"{shape} {fmt(sum(v) / len(v), '', 2)}" for shape, v in by_shape.items()) + ".",
        "",
    ]
    return lines


def cpu_section(results: dict) -> list[str]:
    c = results.get("cpu")
    if not c:
        return []
    return [
        "## 9. Render-process CPU per image",
        "",
        f"{c['jobs']} tiny jobs one at a time through the service (each submitted once the one before it completed;",
        "no backlog, so every run renders alone), against the bare loop over the same jobs, "
        f"{c['rounds']} round(s) with a bare run before and after each. The render process is the `renderq worker`'s",
        "pool child (psutil: user + system CPU before and after the jobs): it claims, renders, writes progress",
        "and beats the heartbeat; its finisher process (worker/finishers.py) encodes and uploads the PNG and",
        "writes the run's records. The bare figure is the bare process's `time.process_time()` around its renders.",
        "",
        "| CPU per image | ms | ÷ bare |",
        "|---|---|---|",
        f"| bare pipeline (process CPU) | {fmt(c['bare_cpu_ms'], '', 2)} | 1.00× |",
        f"| **worker's render process** | {fmt(c['render_cpu_ms'], '', 2)} | {fmt(c['ratio'], '×', 2)} |",
        f"| worker's Celery parent | {fmt(c['parent_cpu_ms'], '', 2)} | |",
        f"| render process + parent | {fmt(c['render_cpu_ms'] + c['parent_cpu_ms'], '', 2)} | {fmt(c['with_parent_ratio'], '×', 2)} |",
        *([f"| worker's finisher process | {fmt(c['finisher_cpu_ms'], '', 2)} | |",
           f"| the whole worker (render + finisher + parent) | "
           f"{fmt(c['render_cpu_ms'] + c['parent_cpu_ms'] + c['finisher_cpu_ms'], '', 2)} | {fmt(c['worker_ratio'], '×', 2)} |"]
          if "worker_ratio" in c else []),
        "",
        f"Round by round (render process ÷ bare): {_list(c['round_ratios'])}. Wall clock meanwhile: bare "
        f"{fmt(c['bare_wall_ms'])} ms per image; through the service {fmt(c['end_to_end_median_ms'])} ms median from created to "
        f"completed, of which inference {fmt(c['inference_median_ms'])} ms.",
        "",
    ]


def identical_section(results: dict) -> list[str]:
    i = results.get("identical")
    if not i:
        return []
    lines = [
        "## 10. Batched images against the same requests rendered alone",
        "",
        f"{i['jobs']} requests, each its own prompt and seed, one shape, queued with no worker running and drained",
        f"by one worker ({calls_text(Counter(i['batch_sizes']))}); their PNGs fetched through the",
        "API's signed URLs and compared channel value by channel value with the bare pipeline's images of the",
        f"same requests rendered one per call and {i['bare_per_call']} per call.",
        "",
        "| compared | largest difference (of 255) | images that differ | channel values that differ |",
        "|---|---|---|---|",
    ]
    for key, label in (("service_vs_alone", "**service, batched ↔ bare, alone**"), ("together_vs_alone", "bare, batched ↔ bare, alone"),
                       ("service_vs_together", "service, batched ↔ bare, batched")):
        v = i[key]
        lines.append(f"| {label} | {v['largest']} | {v['images_differing']} of {v['images']} | {v['values_differing']:,} of {v['values']:,} |")
    lines += ["", identical_explanation(i), ""]
    return lines


def calls_text(counts: dict) -> str:
    """`296 runs in calls of 8, 4 runs in calls of 4`, from {batch size: runs}, largest first."""
    return ", ".join(f"{n} run{'s' if n != 1 else ''} in calls of {size}"
                     for size, n in sorted(((int(size), n) for size, n in counts.items()), reverse=True))


def identical_explanation(i: dict) -> str:
    """What the figures mean, in the words their values call for."""
    s, t, same = i["service_vs_alone"], i["together_vs_alone"], i["service_vs_together"]
    if s["largest"] == 0:
        return "A batched run's image is the image of the same request rendered alone, to the last bit."
    if t["largest"] == 0 or same["largest"] > 0:
        return (f"Not identical: up to {s['largest']} of 255 on a channel value, and the service's batched images differ "
                f"from the bare pipeline's batched ones by up to {same['largest']} (bare batched ↔ bare alone: "
                f"{t['largest']}): not the model call alone; the worker's path differs from the bare loop's.")
    return (f"Not identical: up to {s['largest']} of 255 on a channel value. The bare pipeline's own batched images "
            f"differ from its images rendered alone by up to {t['largest']}, and the service's batched images equal "
            "the bare batched ones: the difference comes from rendering in one call, not from the service. With "
            "eight images in a call the text encoder's and the UNet's matrix products (GEMMs) and convolutions run "
            "on larger matrices, for which the CPU kernels (oneDNN / MKL) block and sum in another order; float32 "
            "sums taken in another order round differently in the last bits, and after the denoising steps and the "
            "VAE a few channel values land one step of 255 apart. Seeds, prompts and every setting are the same.")


def keys_section(results: dict) -> list[str]:
    k = results.get("keys")
    if not k:
        return []
    lines = [
        "## 11. The API with API keys on",
        "",
        f"Two `renderq api` processes on one stack, one with keys off (RENDERQ_AUTH_DISABLED=true, as in section 4) and",
        "one with keys required, called with `Authorization: Bearer <key>` (wrk -H); same wrk load "
        f"(1 thread, {k['connections']} connections, {k['seconds']:g} s a run), {k['rounds']} round(s), the order of the two alternating. The key's",
        "limits are set out of reach (1,000,000 requests/s, 10⁹ active runs): each keyed request pays the key",
        "lookup and the rate-limit count, a submit also the active-run reservation, and nothing is refused.",
        "",
        "| endpoint | keys | requests/s | per CPU-s | p50 | p99 | non-2xx | keys on ÷ off (wall / CPU) | a key's API CPU per request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    active = k["on"]["submit"].get("active_runs_after")
    if active:
        lines[-2:-2] = [
            "Each keyed submit run uses a fresh key, and no worker drains what it queues: a submit's reservation",
            "of an active-run slot (storage/quotas.py) reads the status of every run its key has queued or running,",
            f"so its cost grows within a run; the keys ended their runs with {', '.join(f'{n:,}' for n in active)} runs queued.",
            "",
        ]
    for endpoint, label, _ in KEY_ENDPOINTS:
        cost = k["cost"][endpoint]
        for mode in ("off", "on"):
            v = k[mode][endpoint]
            tail = (f"{fmt(cost['wall_ratio'], '×', 2)} / {fmt(cost['cpu_ratio'], '×', 2)} | {fmt(cost['cpu_us_per_request'], ' µs', 0)}"
                    if mode == "on" else " | ")
            lines.append(f"| {label if mode == 'off' else ''} | {mode} | {fmt(v['per_second'], '', 0)} | {fmt(v['per_cpu_second'], '', 0)} | "
                         f"{fmt(v['p50_ms'], ' ms')} | {fmt(v['p99_ms'], ' ms')} | {v['non_2xx']} | {tail} |")
    lines += [""]
    return lines
