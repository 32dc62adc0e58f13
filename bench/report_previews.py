"""BENCHMARKS.md's rows and section of the live-previews benchmark (bench/previews.py, issue 15)."""

from __future__ import annotations

from .report_format import at_most, fmt

Row = tuple[str, str, str, bool | None]


def previews_rows(results: dict) -> list[Row]:
    p = results.get("previews")
    if not p:
        return []
    job = p["job"]
    return [(f"Live previews, one every {p['every']} steps: render time with ÷ without, median of the rounds' ratios "
             f"({job['width']}×{job['height']}, {job['num_inference_steps']} steps, {len(p['on'])} rounds, alternating)", "≤ 1.05×",
             f"{fmt(p['paired_ratio'], '×', 3)} (medians {fmt(p['median_on'] * 1000, ' ms', 0)} vs "
             f"{fmt(p['median_off'] * 1000, ' ms', 0)}: ×{fmt(p['ratio'], '', 3)})", at_most(p["paired_ratio"], 1.05)),
            ("  same, CPU seconds of the rendering process (render and publisher threads)", "≤ 1.05×",
             fmt(p.get("cpu_ratio"), "×", 3), at_most(p.get("cpu_ratio"), 1.05))]


def _spread(p: dict) -> str:
    ratios = [on / off for off, on in zip(p["off"], p["on"])]
    return f"{fmt(min(ratios), '×', 2)} to {fmt(max(ratios), '×', 2)}" if ratios else "–"


def previews_section(results: dict) -> list[str]:
    p = results.get("previews")
    if not p:
        return []
    job, parts = p["job"], p["parts_ms"]
    return [
        "## 13. What live previews cost a render",
        "",
        f"The worker's text-to-image pipeline in one process renders the same request ({job['width']}×{job['height']}, "
        f"{job['num_inference_steps']} steps, the tiny model)",
        f"{len(p['on'])} times with a live preview every {p['every']} steps ({p['previews_per_render']} a render) and "
        f"{len(p['off'])} times without, alternating (which goes",
        "first changes every round). Previews are made as a worker makes them: the pipeline decodes the latents on the",
        "render thread (the linear latent→RGB map), the worker's publisher thread encodes a JPEG and publishes it to a",
        "running run in the stack's Redis (the script, the SSE event). A render with previews is timed until it has",
        "returned and every preview is published (an upper bound: a worker goes on meanwhile).",
        "",
        "| | median render | ÷ without: medians | ÷ without: median of the rounds' ratios (their range) | CPU seconds |",
        "|---|---|---|---|---|",
        f"| without previews | {fmt(p['median_off'] * 1000, ' ms', 0)} | | | |",
        f"| a preview every {p['every']} steps | {fmt(p['median_on'] * 1000, ' ms', 0)} | ×{fmt(p['ratio'], '', 3)} "
        f"| **×{fmt(p['paired_ratio'], '', 3)}** ({_spread(p)}) | ×{fmt(p.get('cpu_ratio'), '', 3)} |",
        "",
        f"On the render thread previews took {fmt(p.get('render_thread_ms'), ' ms', 1)} a render (median; deciding after every step, "
        "decoding, handing over). "
        f"One preview's parts alone: decode {fmt(parts['decode'], ' ms', 2)} (render thread), JPEG "
        f"{fmt(parts['encode'], ' ms', 2)} and publish {fmt(parts['publish'], ' ms', 2)} (publisher thread); "
        f"{parts['side']} px, {parts['jpeg_bytes']:,} bytes.",
        "The parts add up to "
        f"{fmt((parts['decode'] + parts['encode'] + parts['publish']) * p['previews_per_render'], ' ms', 1)} a render. "
        "On two cores shared with other work the renders' wall time",
        f"wanders (here {fmt(min(p['off']) * 1000, ' ms', 0)} to {fmt(max(p['off']) * 1000, ' ms', 0)} without previews), so "
        "the target is read on each round's pair,",
        "rendered back to back; the medians' ratio and the rounds' spread show that noise, the render thread's time and",
        "the CPU seconds what previews really take.",
        "",
    ]
