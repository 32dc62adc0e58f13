"""GET /v1/generations/{run_id}/events: status changes, progress and live previews as
Server-Sent Events (read by api/run_stream.py), then the full run; it ends with the run."""

from __future__ import annotations

import json
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from storage.records import RunStatus

from ..problems import PROBLEM_RESPONSES
from ..run_stream import run_events
from ..run_views import missing_run, run_view
from ..services import Services, get_services
from .generations import RunId

router = APIRouter(prefix="/v1/generations", tags=["generations"])


def _event(kind: str, data: dict) -> ServerSentEvent:
    # A preview's id is also the SSE event's id.
    return ServerSentEvent(data=json.dumps(data), event=kind, id=str(data["id"]) if kind == "preview" else None)


async def _final_event(services: Services, run_id: str) -> ServerSentEvent:
    record = await run_in_threadpool(services.runs.get, run_id)
    view = await run_in_threadpool(run_view, record, services) if record else None
    return ServerSentEvent(data=view.model_dump_json() if view else "{}", event="run")


@router.get(
    "/{run_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
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

    async def stream() -> AsyncIterator[ServerSentEvent]:
        ended = False
        async for kind, data in run_events(request, services, run_id):
            ended = kind == "status" and RunStatus(data["status"]).is_final
            yield _event(kind, data)
        if ended:
            yield await _final_event(services, run_id)

    return EventSourceResponse(stream(), ping=15)
