"""A run's live events, read once for every stream that shows them: the native SSE stream
(api/routes/events.py) and OpenAI's `stream: true` (api/openai/streaming.py).

Fed by the Redis channel the storage layer publishes on whenever it writes a run's status,
progress or preview (storage/run_events.py, storage/previews.py). It subscribes first and then
reads the run's current state, so nothing written in between is missed; it ends after the run's
final status (never a preview after it: previews are published only while a run is running).
"""

from __future__ import annotations

import json
from typing import AsyncIterator

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from storage.records import RunRecord, RunStatus
from storage.redis_client import make_async_redis
from storage.run_events import events_channel, run_summary

from .services import Services

# Without a message for this long the stream re-reads the record, in case a publish was lost
# (pub/sub is fire-and-forget, e.g. across a Redis reconnect).
RECHECK_SECONDS = 5.0


def async_redis(request: Request, services: Services):
    client = getattr(request.app.state, "async_redis", None)
    if client is None:
        client = request.app.state.async_redis = make_async_redis(services.settings)
    return client


async def _latest_preview(record: RunRecord, services: Services) -> dict | None:
    """The running run's latest preview event, for a stream that joins it late."""
    if record.status != RunStatus.running or record.preview_step is None:
        return None
    current = await run_in_threadpool(services.runs.previews.get, record.run_id)
    return current.event() if current is not None else None


async def run_events(request: Request, services: Services, run_id: str) -> AsyncIterator[tuple[str, dict]]:
    """(kind, data) in order: "status" (the run's summary: first its state now, then every
    change), "progress" (`{"progress": n}`, rising, while running) and "preview" (storage/previews.py
    Preview.event(), ids rising; the latest first for a run already running). Ends after the final
    status, or early when the client goes or the run's record does."""
    pubsub = async_redis(request, services).pubsub()
    await pubsub.subscribe(events_channel(run_id))
    try:
        record: RunRecord | None = await run_in_threadpool(services.runs.get, run_id)
        if record is None:
            return
        yield "status", run_summary(record)
        status, progress, shown = record.status, record.progress, 0  # shown: the last preview id sent
        current = await _latest_preview(record, services)
        if current is not None:
            shown = current["id"]
            yield "preview", current
        quiet = 0.0
        while not status.is_final:
            if await request.is_disconnected():
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                quiet += 1.0
                if quiet >= RECHECK_SECONDS:
                    quiet = 0.0
                    record = await run_in_threadpool(services.runs.get, run_id)
                    if record is None:
                        return
                    if record.status != status:
                        status, progress = record.status, record.progress
                        yield "status", run_summary(record)
                continue
            quiet = 0.0
            data = json.loads(message["data"])
            kind = data.pop("type")
            if kind == "status":
                status, progress = RunStatus(data["status"]), data["progress"]
                yield "status", data
            elif kind == "preview":
                if data["id"] > shown:
                    shown = data["id"]
                    yield "preview", data
            elif data["progress"] > progress and status == RunStatus.running:
                # Published before our snapshot was read: already covered by it.
                progress = data["progress"]
                yield "progress", {"progress": progress}
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
