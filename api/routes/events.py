"""GET /v1/generations/{run_id}/events: status changes and progress as Server-Sent Events.

Fed by the Redis channel the storage layer publishes on whenever it writes a run's status or
progress (storage/run_events.py). The stream subscribes first and then sends the run's current
state, so nothing written in between is missed; it ends after the run's final status.
"""

from __future__ import annotations

import json
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from storage.records import RunRecord, RunStatus
from storage.redis_client import make_async_redis
from storage.run_events import events_channel, run_summary


from ..problems import PROBLEM_RESPONSES
from ..run_views import missing_run, run_view
from ..services import Services, get_services
from .generations import RunId

router = APIRouter(prefix="/v1/generations", tags=["generations"])

# Without a message for this long the stream re-reads the record, in case a publish was lost
# (pub/sub is fire-and-forget, e.g. across a Redis reconnect).
RECHECK_SECONDS = 5.0


def _async_redis(request: Request, services: Services):
    client = getattr(request.app.state, "async_redis", None)
    if client is None:
        client = request.app.state.async_redis = make_async_redis(services.settings)
    return client


def _status_event(summary: dict) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(summary), event="status")


def _preview_event(data: dict) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event="preview", id=str(data["id"]))


async def _latest_preview(record: RunRecord, services: Services) -> dict | None:
    """The running run's latest preview event, for a stream that joins it late."""
    if record.status != RunStatus.running or record.preview_step is None:
        return None
    current = await run_in_threadpool(services.runs.previews.get, record.run_id)
    return current.event() if current is not None else None


async def _final_event(services: Services, run_id: str) -> ServerSentEvent:
    record = await run_in_threadpool(services.runs.get, run_id)
    view = await run_in_threadpool(run_view, record, services) if record else None
    return ServerSentEvent(data=view.model_dump_json() if view else "{}", event="run")


@router.get(
    "/{run_id}/events",
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`status`, `progress`, `preview` and a last `run` event."}}
    | {k: v for k, v in PROBLEM_RESPONSES.items() if k in (404, 410, 503)},
    summary="Live status and progress of a run (Server-Sent Events)",
)
async def generation_events(request: Request, run_id: str = RunId, services: Services = Depends(get_services)):
    """Events: `status` (every status change, with progress), `progress` (`{"progress": n}`, in
    order), `preview` while it renders with live previews on (`{"run_id", "id", "step",
    "total_steps", "width", "height", "content_type", "image"}`: `image` a data URL of a JPEG of
    at most 256 px, `id` strictly increasing, also the SSE id; the latest one first for a stream
    that joins a running run) and, once the run has ended, `run` (the full run, image URLs
    included); then it ends. No `preview` follows the final `status`."""
    if await run_in_threadpool(services.runs.get, run_id) is None:
        raise await run_in_threadpool(missing_run, services, run_id)
    pubsub = _async_redis(request, services).pubsub()
    await pubsub.subscribe(events_channel(run_id))

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            record: RunRecord | None = await run_in_threadpool(services.runs.get, run_id)
            if record is None:
                return
            yield _status_event(run_summary(record))
            status, progress, shown = record.status, record.progress, 0  # shown: the last preview id sent
            current = await _latest_preview(record, services)
            if current is not None:
                shown = current["id"]
                yield _preview_event(current)
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
                            yield _status_event(run_summary(record))
                    continue
                quiet = 0.0
                data = json.loads(message["data"])
                kind = data.pop("type")  # the SSE event name says it
                if kind == "status":
                    status, progress = RunStatus(data["status"]), data["progress"]
                    yield _status_event(data)
                elif kind == "preview":
                    # Published only while the run runs (storage/previews.py): never after its final status.
                    if data["id"] > shown:
                        shown = data["id"]
                        yield _preview_event(data)
                elif data["progress"] > progress and status == RunStatus.running:
                    # Published before our snapshot was read: already covered by it.
                    progress = data["progress"]
                    yield ServerSentEvent(data=json.dumps({"progress": progress}), event="progress")
            yield await _final_event(services, run_id)
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    return EventSourceResponse(stream(), ping=15)
