"""OpenAI's `stream: true` on POST /v1/images/generations: the run's live previews (storage/
previews.py, read by api/run_stream.py) as `image_generation.partial_image` events, at most
`partial_images` (0–3) of them, spread over the render (partial i is the first preview at or past
(i+1)/(n+1) of its steps); then one `image_generation.completed` event per image, as OpenAI's
SDKs read them (`client.images.generate(..., stream=True, partial_images=2)`). A run that fails,
or is still going after RENDERQ_OPENAI_WAIT_SECONDS, ends the stream with an `error` event in
OpenAI's error shape (naming the run). Partial images are the previews as they are: JPEGs of at
most 256 px; none come where the deployment makes no previews (RENDERQ_PREVIEW_EVERY_STEPS=0)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

from fastapi import Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from core.problems import ProblemError
from storage.records import RunRecord, RunStatus

from ..run_stream import run_events
from ..services import Services
from .errors import envelope
from .fields import GenerationFields
from .results import background, failed, image_items, not_finished


def _event(kind: str, data: dict) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps({"type": kind} | data), event=kind)


def _error(problem: ProblemError) -> ServerSentEvent:
    document = {"type": problem.slug, "status": problem.status, "detail": problem.detail} | problem.extra
    return ServerSentEvent(data=json.dumps(envelope(document)[1]), event="error")


def stream_generation(request: Request, services: Services, record: RunRecord, fields: GenerationFields) -> EventSourceResponse:
    wanted = fields.partial_images or 0
    request_fields = record.request
    common = {
        "background": background(record), "quality": fields.quality if fields.quality in ("low", "medium", "high") else "auto",
        "size": f"{request_fields.get('width')}x{request_fields.get('height')}", "run_id": record.run_id,
    }

    async def events() -> AsyncIterator[ServerSentEvent]:
        sent, ended = 0, False
        waited = services.settings.openai_wait_seconds
        try:
            async with asyncio.timeout(waited):
                async for kind, data in run_events(request, services, record.run_id):
                    if kind == "status":
                        ended = RunStatus(data["status"]).is_final
                    elif kind == "preview" and sent < wanted and data["step"] * (wanted + 1) >= (sent + 1) * data["total_steps"]:
                        yield _event("image_generation.partial_image", common | {
                            "b64_json": data["image"].split(",", 1)[1], "created_at": int(time.time()),
                            "output_format": data["content_type"].removeprefix("image/"), "partial_image_index": sent,
                        })
                        sent += 1
        except TimeoutError:
            pass
        final = await run_in_threadpool(services.runs.get, record.run_id)
        if final is None or not ended and not final.status.is_final:
            yield _error(not_finished(final or record, waited))
        elif final.status != RunStatus.completed:
            yield _error(failed(final))
        else:
            as_b64 = fields.model_copy(update={"response_format": "b64_json"})
            for item in await run_in_threadpool(image_items, services, final, as_b64):
                yield _event("image_generation.completed", common | {
                    "b64_json": item["b64_json"], "created_at": int(time.time()), "output_format": fields.output_format or "png",
                    "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                              "input_tokens_details": {"image_tokens": 0, "text_tokens": 0}},
                })

    return EventSourceResponse(events(), ping=15)
