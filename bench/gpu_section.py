"""The GPU section of BENCHMARKS.md (`python -m bench --device cuda`, bench/gpu.py): found,
replaced or appended between two markers, so that a GPU run writes only its section and a CPU
run, which rewrites the rest of the file (bench/report.py), carries it over."""

from __future__ import annotations

import re

# HTML comments may not hold "--", hence no option names in them.
GPU_BEGIN = "<!-- GPU section: begin. Written by the benchmark's CUDA run; a CPU run keeps it. -->"
GPU_END = "<!-- GPU section: end -->"
_SECTION = re.compile(re.escape(GPU_BEGIN) + r"\n(.*?)" + re.escape(GPU_END) + r"\n?", re.DOTALL)


def gpu_section_of(text: str) -> str:
    """The GPU section's body in a BENCHMARKS.md text; "" when it has none."""
    match = _SECTION.search(text)
    return match.group(1) if match else ""


def with_gpu_section(text: str, body: str) -> str:
    """`text` with its GPU section replaced by `body` (appended at the end when it had none)."""
    block = f"{GPU_BEGIN}\n{body.rstrip()}\n{GPU_END}\n"
    if _SECTION.search(text):
        return _SECTION.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block
