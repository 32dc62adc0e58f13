"""Formatting of BENCHMARKS.md figures: numbers, ratios beside what they divide, targets met."""

from __future__ import annotations

import math


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}{unit}"


def mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✅ met" if ok else "❌ missed")


def _known(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def at_least(value: float | None, goal: float) -> bool | None:
    """Whether `value` meets a `≥ goal` target; None when there is no figure."""
    return value >= goal if _known(value) else None


def at_most(value: float | None, goal: float) -> bool | None:
    """Whether `value` meets a `≤ goal` target; None when there is no figure."""
    return value <= goal if _known(value) else None


def ratio_text(ratio: float | None, top: float | None, bottom: float | None, unit: str, digits: int = 1) -> str:
    """`2.61× (52.3 img/s vs 20.0 img/s)`: a ratio with the two figures it divides."""
    return f"{fmt(ratio, '×', 2)} ({fmt(top, unit, digits)} vs {fmt(bottom, unit, digits)})"


def signed_ms(seconds: float | None) -> str:
    """A difference in milliseconds with its sign: `+7.9 ms`, `−2.1 ms`."""
    if not _known(seconds):
        return "–"
    return f"{'+' if seconds >= 0 else '−'}{abs(seconds) * 1000:,.1f} ms"


def rounds_text(ratio: float | None, rounds: list[float], top: float | None, bottom: float | None, unit: str) -> str:
    """`1.33× (rounds 1.31×, 1.35×; 43.4 vs 29.0 img/s pooled)`: the mean of ratios taken round
    by round, the rounds', and the pooled figures for scale."""
    each = ", ".join(fmt(value, "×", 2) for value in rounds) or "–"
    return f"{fmt(ratio, '×', 2)} (rounds {each}; {fmt(top)} vs {fmt(bottom)}{unit} pooled)"
