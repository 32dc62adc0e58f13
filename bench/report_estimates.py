"""BENCHMARKS.md's rows and section of the estimate-accuracy benchmark (bench/estimates.py, issue 13)."""

from __future__ import annotations

from .report_format import fmt

Row = tuple[str, str, str, bool | None]
TARGET = 0.9


def estimates_rows(results: dict) -> list[Row]:
    e = results.get("estimates")
    if not e or e.get("within") is None:
        return []
    runs = len(e["alone"]) + len(e["queued"])
    return [(f"`estimated_time` at submit within ±{e['tolerance']:.0%} of the real time (created → completed), after warm-up: "
             f"{runs} runs of four operations, 64-128 px, 2-8 steps, alone and in queues of {e['queue']}", f"≥ {TARGET:.0%}",
             f"{e['within']:.0%} (alone {e['alone_within']:.0%}, queued {e['queued_within']:.0%})", e["within"] >= TARGET)]


def _by_operation(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["operation"], []).append(row)
    return grouped


def _ratio_range(rows: list[dict]) -> str:
    ratios = sorted(row["estimated"] / row["real"] for row in rows if row["estimated"] is not None and row["real"] > 0)
    return f"{fmt(ratios[0], '×', 2)} to {fmt(ratios[-1], '×', 2)}" if ratios else "–"


def estimates_section(results: dict) -> list[str]:
    e = results.get("estimates")
    if not e or e.get("within") is None:
        return []
    from .estimates import within

    lines = [
        "## 14. How good `estimated_time` is",
        "",
        "A worker with the tiny catalog (the tiny Stable Diffusion model, its random-weight Swin2SR upscaler and",
        f"SegFormer background remover) renders {len(e['warm'])} warm-up runs (each operation at each size of the mix, twice:",
        f"loads, first averages), then {len(e['alone'])} runs of a fixed mix (text-to-image, image-to-image at strength 0.5-1,",
        "upscale ×2, remove-background; 64-128 px, 2-8 steps), each submitted once the one before has ended, then",
        f"{len(e['queued'])} more in queues of {e['queue']} submitted at once. Each run's `estimated_time`, as its submit",
        "answered it, is set against what it took (completed_at − created_at, from its record).",
        "",
        f"| operation | runs | within ±{e['tolerance']:.0%} | estimate ÷ real (range) | median real |",
        "|---|---|---|---|---|",
    ]
    for operation, rows in _by_operation(e["alone"] + e["queued"]).items():
        reals = sorted(row["real"] for row in rows)
        lines.append(f"| {operation} | {len(rows)} | {fmt(within(rows) * 100, ' %', 0)} | {_ratio_range(rows)} "
                     f"| {fmt(reals[len(reals) // 2] * 1000, ' ms', 0)} |")
    lines += [
        "",
        "The estimate is the run's own model call (per operation and size, a fixed part plus a part per denoising",
        "step actually run, fitted over the completed renders: storage/render_stats.py) and the per-run overhead,",
        "plus, while it is queued, the work ahead of it and what the busy workers still hold (read at submit).",
        "The estimator before this (one rate per step for each size, whatever the operation, and what the workers",
        "hold read up to a second stale) had 72 % of the quick mix within ±50 % (alone 62 %, queued 81 %): an 8-step",
        "text-to-image estimated at up to 3× its time, the second run of a queue at a third of it.",
        "Limits: these runs take 30-250 ms, so a few ms of pickup or upload count; an image operation whose size",
        "follows its input is timed by operation alone (`OPERATION:input`), whatever the input's size.",
        "",
    ]
    return lines
