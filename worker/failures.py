"""What a failed render records: the problem document (core/problems.py types) of what raised."""

from __future__ import annotations

import sys

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from core.problems import Problem
from pipelines.base import NothingMatched, OutputTooLarge
from storage.destinations import DestinationFailed
from storage.image_store import StorageUnavailable

from .runtime import InputMissing, ModelUnavailable

# What a failed render records, by what raised: the first entry the exception is an instance of.
FAILURES: tuple[tuple[tuple[type[BaseException], ...], str, int], ...] = (
    ((StorageUnavailable,), "storage-failed", 503),
    ((DestinationFailed,), "destination-failed", 502),
    ((ModelUnavailable,), "model-unavailable", 422),
    ((OutputTooLarge,), "output-too-large", 422),
    ((InputMissing,), "unknown-asset", 422),
    ((NothingMatched,), "nothing-matched", 422),
)


def problem_for(exc: BaseException, soft_time_limit: int) -> Problem:
    """The problem document a failed render records (core/problems.py types)."""
    torch = sys.modules.get("torch")  # only a process that rendered can have run out of GPU memory

    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return Problem.of("render-timeout", 504, detail=f"render exceeded its time limit of {soft_time_limit}s")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return Problem.of("out-of-memory", 507, detail=str(exc).splitlines()[0])
    for types, slug, status in FAILURES:
        if isinstance(exc, types):
            return Problem.of(slug, status, detail=str(exc))
    return Problem.of("render-failed", 500, detail=f"{type(exc).__name__}: {exc}")
