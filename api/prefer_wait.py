"""`Prefer: wait=N` (RFC 7240), as Replicate uses it: hold a submit's answer until the run ends."""

from __future__ import annotations

import json
import re
import time

from storage.records import RunRecord
from storage.run_events import events_channel
from storage.redis_ops import run_async

from .services import Services

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
RECHECK_SECONDS = 1.0


def requested_wait(prefer: str | None, cap: float) -> float | None:
    match = _WAIT.search(prefer or "")
    return min(float(match.group(1)), cap) if match else None


async def apply_prefer_wait(services: Services, record: RunRecord, prefer: str | None, headers: dict[str, str]) -> tuple[RunRecord, int]:
    """Wait (up to the capped N) for the run to end: (the final run, 200), else (its current
    state, 202)."""
    wait = requested_wait(prefer, services.settings.max_prefer_wait)
    if wait is None:
        return record, 202
    headers["Preference-Applied"] = f"wait={wait:g}"
    current = await wait_for_end(services, record, wait)
    return current, 200 if current.status.is_final else 202


async def wait_for_end(services: Services, record: RunRecord, seconds: float) -> RunRecord:
    """The run once it has ended, or as it is after `seconds`. Woken by the run's status events
    (storage/run_events.py publishes every change on its channel), so a sync caller (Prefer:
    wait, the OpenAI and dialect routes) has its answer within a round trip of the run's end, not
    of a poll; the record is read after subscribing (a change in between is not missed) and again
    every RECHECK_SECONDS (pub/sub is fire-and-forget). Holds no thread."""
    deadline = time.monotonic() + seconds
    if record.status.is_final or seconds <= 0:
        return record
    client = services.async_redis

    async def read(current: RunRecord) -> RunRecord:
        return await run_async(client, services.runs.get_op(record.run_id)) or current

    pubsub = client.pubsub()
    await pubsub.subscribe(events_channel(record.run_id))
    try:
        current = await read(record)
        while not current.status.is_final and (left := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, RECHECK_SECONDS))
            if message is None or json.loads(message["data"]).get("type") == "status":
                current = await read(current)
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
    return current
