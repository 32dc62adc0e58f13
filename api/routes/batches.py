"""/v1/batches: up to `max_batch_size` runs in one call, all accepted or none; their progress together."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from storage.batches import new_batch_id
from storage.prices import credits
from storage.records import RunRecord, RunStatus
from storage.render_stats import step_images
from storage.runs import run_key

from .. import submission
from ..bodies import GenerationCreate
from ..delivery_options import BatchCreated, BatchRunView, BatchView, WebhookView
from core.problems import ProblemError
from ..problems import PROBLEM_RESPONSES, validation_problem
from ..estimates import DEFAULT_RENDER_RATE
from ..services import Services, get_services

router = APIRouter(prefix="/v1/batches", tags=["batches"])

BatchId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines", "text/plain")


def _jsonl(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ProblemError("malformed-request", 400, detail=f"line {number} is not valid JSON: {exc.msg}", line=number) from exc
    return items


async def _items(request: Request) -> tuple[list[Any], dict[str, Any]]:
    """The requests of a batch, and batch-level options from a JSON object body."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ProblemError("malformed-request", 400, detail="multipart upload needs a `file` part (JSONL)")
        return _jsonl((await upload.read()).decode("utf-8", errors="replace")), {}
    body = await request.body()
    if content_type in JSONL_TYPES:
        return _jsonl(body.decode("utf-8", errors="replace")), {}
    if content_type != "application/json":
        raise ProblemError("unsupported-media-type", 415, detail="send a JSON array, a JSON object with `requests`, or JSONL")
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ProblemError("malformed-request", 400, detail=f"the request body is not valid JSON: {exc.msg}") from exc
    if isinstance(parsed, list):
        return parsed, {}
    if isinstance(parsed, dict) and isinstance(parsed.get("requests"), list):
        return parsed["requests"], {k: v for k, v in parsed.items() if k != "requests"}
    raise ProblemError("validation-error", 422, detail="the body must be a JSON array of requests or an object with `requests`")


@router.post(
    "",
    status_code=202,
    response_model=BatchCreated,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 402, 422, 503)},
    summary="Submit up to 1000 runs at once (JSON array, {requests, webhook_url}, or JSONL)",
)
async def create_batch(
    request: Request,
    response: Response,
    webhook_url: str | None = Query(None, max_length=2000, description="Called once when every run of the batch has ended."),
    services: Services = Depends(get_services),
) -> BatchCreated:
    """Atomic: every request is validated first; one bad item rejects the whole batch with a
    problem naming its `index`. Each item takes every field of POST /v1/generations (its own
    webhook and priority included)."""
    items, options = await _items(request)
    limit = services.settings.max_batch_size
    if not items:
        raise ProblemError("validation-error", 422, detail="the batch is empty")
    if len(items) > limit:
        raise ProblemError("payload-too-large", 413, detail=f"{len(items)} requests; a batch takes at most {limit}")
    unknown = set(options) - {"webhook_url"}
    if unknown:
        raise ProblemError("validation-error", 422, detail=f"unknown batch fields: {', '.join(sorted(unknown))}")
    # Webhook checks resolve host names and output checks read Redis (both blocking): the
    # records are built, stored and enqueued in the thread pool, not on the event loop.
    batch_id, records = await run_in_threadpool(_submit, services, items, options.get("webhook_url", webhook_url))
    response.headers["Location"] = f"{router.prefix}/{batch_id}"
    return BatchCreated(batch_id=batch_id, run_ids=[r.run_id for r in records], total=len(records))


def _submit(services: Services, items: list[Any], webhook_url: str | None) -> tuple[str, list[RunRecord]]:
    """Validate every item, then store and enqueue them all; a problem naming the first bad item's index."""
    batch_webhook = submission.webhook_target(services, webhook_url, ["completed"], "batch ")
    batch_id = new_batch_id()
    records = []
    outputs: set[str] = set()  # checked once per batch, not once per item
    for index, item in enumerate(items):
        try:
            body = GenerationCreate.model_validate(item)
        except ValidationError as exc:
            raise validation_problem(exc, prefix=f"item {index}: ", whole="item", index=index) from exc
        try:
            prepared = submission.prepare(services, body)
            records.append(submission.new_record(services, prepared, f"item {index}: ", outputs, batch_id=batch_id))
        except ProblemError as exc:
            exc.extra["index"] = index
            raise
    submission.create(services, records, batch_id=batch_id, batch_webhook=batch_webhook)
    return batch_id, records


def _when(epoch: str | float) -> datetime:
    return datetime.fromtimestamp(float(epoch), tz=timezone.utc)


@router.get(
    "/{batch_id}",
    response_model=BatchView,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (404, 503)},
    summary="Counts per status, overall progress, time left and the runs (paginated) of a batch",
)
def get_batch(
    batch_id: str = BatchId,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, pattern=r"^\d{1,6}$", description="From `next_cursor`."),
    services: Services = Depends(get_services),
) -> BatchView:
    runs = services.runs
    batch = runs.batches.get(batch_id)
    if batch is None:
        raise ProblemError("not-found", 404, detail=f"no batch {batch_id} (never existed, or expired)")
    run_ids = runs.batches.run_ids(batch_id)
    with runs.redis.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            pipe.hmget(run_key(run_id), "status", "progress", "request", "credits_estimate", "credits_used", "operation")
        rows = pipe.execute()
    counts = {status.value: 0 for status in RunStatus}
    stats = runs.render_stats(DEFAULT_RENDER_RATE)
    done_units = total_units = remaining_seconds = 0.0
    estimated = used = 0
    summaries = []
    for run_id, (status, progress, request, estimate, charged, operation) in zip(run_ids, rows):
        status = status or RunStatus.expired.value  # a record gone before its batch: ended
        progress = int(progress or 0)
        request = json.loads(request) if request else {}
        units = step_images(request) if request else 0  # progress is counted in denoising steps
        final = RunStatus(status).is_final
        counts[status] += 1
        total_units += units
        done_units += units if final else units * progress / 100
        remaining_seconds += 0 if final or not request else stats.run_seconds(request, progress, operation)
        estimated += int(estimate or 0)
        used += int(charged or 0)
        summaries.append(BatchRunView(run_id=run_id, status=status, progress=100 if status == "completed" else progress))
    done = all(RunStatus(s.status).is_final for s in summaries)
    start = int(cursor or 0)
    page = summaries[start:start + limit]
    webhook = batch.get("webhook")
    return BatchView(
        batch_id=batch_id,
        created_at=_when(batch["created_at"]),
        expires_at=_when(batch["expires_at"]),
        total=len(run_ids),
        counts=counts,
        progress=round(100 * done_units / total_units, 2) if total_units else 100.0,
        estimated_time=None if done else round(remaining_seconds / runs.busy_workers(), 3),
        done=done,
        credits_estimated=credits(estimated),
        credits_used=credits(used),
        webhook=WebhookView(
            url=webhook["url"], events=webhook["events"],
            attempts=int(batch.get("webhook_attempts", 0)),
            last_status_code=int(batch["webhook_last_status"]) if batch.get("webhook_last_status") else None,
        ) if webhook else None,
        runs=page,
        next_cursor=str(start + limit) if start + limit < len(summaries) else None,
    )
