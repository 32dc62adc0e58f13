"""`Prefer: wait=N` (RFC 7240), as Replicate uses it: hold a submit's answer until the run ends."""

from __future__ import annotations

import asyncio
import re
import time

from storage.records import RunRecord
from storage.redis_ops import run_async

from .services import Services

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
POLL_SECONDS = 0.05


def requested_wait(prefer: str | None, cap: float) -> float | None:
    match = _WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else None


async def apply_prefer_wait(services: Services, record: RunRecord, prefer: str | None, headers: dict[str, str]) -> tuple[RunRecord, int]:
    """Wait (up to the capped N) for the run to end: (the final run, 200), else (its current
    state, 202). Polls the record on the event loop, so the wait holds no thread."""
    wait = requested_wait(prefer, services.settings.max_prefer_wait)
    if wait is None:
        return record, 202
    headers["Preference-Applied"] = f"wait={wait:g}"
    current = await wait_for_end(services, record, wait)
    return current, 200 if current.status.is_final else 202


async def wait_for_end(services: Services, record: RunRecord, seconds: float) -> RunRecord:
    """The run once it has ended, or as it is after `seconds`. Polls the record on the event
    loop, so the wait holds no thread."""
    deadline = time.monotonic() + seconds
    current = record
    while not current.status.is_final and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        current = await run_async(services.async_redis, services.runs.get_op(record.run_id)) or current
    return current
