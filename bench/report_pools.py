"""BENCHMARKS.md rows and section of the worker-pool measurements (bench/pools.py): two pools of
two workers on a mixed backlog, and a fresh worker meeting a burst. Absent when it did not run."""

from __future__ import annotations

from .report_format import fmt

Row = tuple[str, str, str, bool | None]


def pools_rows(results: dict) -> list[Row]:
    p = results.get("pools")
    if not p:
        return []
    one_each = all(entry["one_per_model"] for entry in p["loads"].values())
    rows: list[Row] = [(
        "Worker pools: 2 pools × 2 workers, mixed backlog: images/s per pool", "–",
        ", ".join(f"{pool} {fmt(v['images_per_second'], ' img/s')}" for pool, v in p["pools"].items()), None,
    ), (
        "  model loads per worker: each of its pool's models once, nothing else", "one per model",
        f"{sum(len(e['models']) for e in p['loads'].values())} loads by {len(p['loads'])} workers", one_each,
    )]
    b = p.get("burst")
    if b:
        rows.append((f"  fresh worker, {b['runs']} runs queued: its start → first render done", "–",
                     f"{fmt(b['to_first_completed'], ' s', 2)} (ready {fmt(b['to_ready'], ' s', 2)}, model load "
                     f"{fmt(b['model_load'], ' s', 2)}, first started {fmt(b['to_first_started'], ' s', 2)})", None))
    return rows


def pools_section(results: dict) -> list[str]:
    p = results.get("pools")
    if not p:
        return []
    lines = [
        "## 12. Worker pools",
        "",
        "A catalog of five copies of the tiny model under their own ids: a1, a2 in pool a, b1, b2 in pool b, c1 in",
        f"pool c. {2 * p['jobs_per_pool']} tiny runs cycling over a1, b1, a2, b2 are queued with no worker up; then four",
        "workers start at once, `renderq worker --pool=a` twice and `--pool=b` twice (bench/pools.py). Each pool's",
        "rate runs from its first run started to its last completed; the four share the machine's two cores.",
        "",
        "| pool | runs | seconds | images/s | mean batch | runs on another pool's worker |",
        "|---|---|---|---|---|---|",
    ]
    for pool, v in p["pools"].items():
        lines.append(f"| {pool} | {v['runs']} | {fmt(v['seconds'], ' s', 2)} | {fmt(v['images_per_second'])} | "
                     f"{fmt(v['batch_size_mean'], '', 2)} | {v['wrong_pool']} |")
    lines += ["", "Model loads (renderq_model_loads in /metrics), per worker:", "",
              "| worker | pool | loads | one per model of its pool |", "|---|---|---|---|"]
    for name, entry in sorted(p["loads"].items()):
        loads = ", ".join(f"{model} ×{count}" for model, count in sorted(entry["models"].items()))
        lines.append(f"| {name} | {entry['pool']} | {loads} | {'yes' if entry['one_per_model'] else 'no'} |")
    b = p.get("burst")
    if b:
        lines += [
            "",
            f"Then {b['runs']} runs of pool c, which no worker serves, are queued ({fmt(b['submit_seconds'], ' s', 2)} through",
            "POST /v1/batches), and one `renderq worker --pool=c` is started. From its start: Celery's `ready.` after "
            f"{fmt(b['to_ready'], ' s', 2)}, its model loaded in {fmt(b['model_load'], ' s', 2)}, the first run started after",
            f"{fmt(b['to_first_started'], ' s', 2)} and done after {fmt(b['to_first_completed'], ' s', 2)} "
            f"({fmt(b['queued_to_first_completed'], ' s', 2)} after the burst was queued); it then drained the burst at",
            f"{fmt(b['drain_images_per_second'])} images/s ({b['completed']} of {b['runs']} completed).",
        ]
    return lines + [""]
