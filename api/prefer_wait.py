"""`Prefer: wait=N` (RFC 7240), as Replicate uses it: hold a submit's answer until the run ends."""

from __future__ import annotations

import re
import time

from fastapi import Response

from storage.records import RunRecord

from .services import Services

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
POLL_SECONDS = 0.05


def requested_wait(prefer: str | None, cap: float) -> float | None:
    match = _WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else None


def apply_prefer_wait(services: Services, record: RunRecord, prefer: str | None, response: Response) -> RunRecord:
    """Wait (up to the capped N) for the run to end: 200 with the final run, else 202 with its
    current state. Polls the record; a sync route runs in the thread pool, so the loop blocks
    no other request."""
    wait = requested_wait(prefer, services.settings.max_prefer_wait)
    if wait is None:
        return record
    response.headers["Preference-Applied"] = f"wait={wait:g}"
    deadline = time.monotonic() + wait
    current = record
    while not current.status.is_final and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        current = services.runs.get(record.run_id) or current
    if current.status.is_final:
        response.status_code = 200
    return current
