"""BENCHMARKS.md from a results dict; raw results first, so a failed plot loses nothing."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(results: dict, out: Path) -> None:
    directory = out.parent / "bench" / "results"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=1, default=str))
