"""Turning validated submit bodies into run records and queue messages (single runs, batches, retries)."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from core import tenancy
from storage.destinations import parse_output
from storage.records import RunRecord, WebhookTarget, new_run_id
from storage.redis_ops import Op, run, run_async
from storage.webhook_targets import UnsafeWebhookUrl, check_webhook_url
from core.queue import enqueue_render, render_message

from .delivery_options import DeliveryOptions
from .model_selection import resolve_models
from .problems import ProblemError
from .schemas import GenerationCreate
from .services import Services
from .templates import apply_template


def webhook_target(services: Services, url: str | None, events: list[str] | None, where: str = "") -> WebhookTarget | None:
    """The webhook of a request, checked now (http(s), public addresses only); a 422 problem if not."""
    if url is None:
        return None
    try:
        check_webhook_url(url, services.settings.webhook_allow_private)
    except UnsafeWebhookUrl as exc:
        raise ProblemError("unsafe-webhook-url", 422, detail=f"{where}webhook_url: {exc}") from exc
    return WebhookTarget(url=url) if events is None else WebhookTarget(url=url, events=list(events))


def checked_output(services: Services, output: str | None, where: str = "", checked: set[str] | None = None) -> str | None:
    """The `output` of a request, its destination known to the caller's tenant; a 422 problem if not.
    `checked`: outputs already found good in this request (a batch), added to and not read again."""
    if output is None or (checked is not None and output in checked):
        return output
    name, _ = parse_output(output)  # the field's pattern already holds
    if services.destinations.get(tenancy.stamp(), name) is None:
        raise ProblemError(
            "unknown-destination", 422, detail=f"{where}output: no destination {name!r}; register it with POST /v1/destinations"
        )
    if checked is not None:
        checked.add(output)
    return output


def delivery_fields(
    services: Services, options: DeliveryOptions, now: float, where: str = "", checked_outputs: set[str] | None = None
) -> dict:
    """The RunRecord fields of a body's delivery options (any operation)."""
    return {
        "created_at": now,
        "priority": options.priority,
        "webhook": webhook_target(services, options.webhook_url, options.webhook_events, where),
        "start_deadline": now + options.start_within if options.start_within else None,
        "output": checked_output(services, options.output, where, checked_outputs),
    }


def new_record(
    services: Services, body: GenerationCreate, where: str = "", checked_outputs: set[str] | None = None, **fields
) -> RunRecord:
    """A text-to-image run record: template and style preset applied, model checked against the
    catalog, webhook URL checked."""
    body, applied = apply_template(body, services.templates)
    model_id, loras = resolve_models(body, services.catalog, "base")
    return RunRecord(
        run_id=new_run_id(),
        operation="text-to-image",
        model_id=model_id,
        loras=loras,
        request=body.to_render_request().model_dump(mode="json"),
        **delivery_fields(services, body, time.time(), where, checked_outputs),
        **(applied.record_fields() if applied else {}),
        **fields,
    )


def enqueue(services: Services, records: list[RunRecord]) -> None:
    try:
        for record in records:
            enqueue_render(services.celery, record.run_id, record.attempt, record.priority.value)
    except Exception:
        # Broker unreachable: not accepted (the caller gets a 503 and may retry), so leave no
        # queued orphan behind and give back the key's slots.
        from .auth import release_runs

        for record in records:
            services.runs.discard(record.run_id)
        release_runs(services, [record.run_id for record in records])
        raise


def _create_op(services: Services, record: RunRecord) -> tuple[Op[list[RunRecord]], bool]:
    """(the write of the record, whether it still needs `enqueue` afterwards). The record and
    its queue message go in one Redis transaction when the broker is that Redis: one round
    trip instead of two, Celery's producer (~0.6 ms) skipped, and never a record without its
    message. Otherwise write, then `send_task`."""
    settings = services.settings
    message = None
    if not settings.embedded and settings.effective_broker_url == settings.redis_url:
        message = render_message(services.celery, record.run_id, record.attempt, record.priority.value)
    also = (lambda pipe: pipe.lpush(*message)) if message else None
    return services.runs.create_many_op([record], also=also), message is None


def create_and_enqueue(services: Services, record: RunRecord) -> RunRecord:
    op, then_enqueue = _create_op(services, record)
    run(services.runs.redis, op)
    if then_enqueue:
        enqueue(services, [record])
    return record


async def create_and_enqueue_async(services: Services, record: RunRecord) -> RunRecord:
    """The same on the event loop (redis.asyncio); only Celery's own producer goes to a thread."""
    op, then_enqueue = _create_op(services, record)
    await run_async(services.async_redis, op)
    if then_enqueue:
        await run_in_threadpool(enqueue, services, [record])
    return record


async def submit(services: Services, body: GenerationCreate) -> RunRecord:
    if body.webhook_url is not None or body.output is not None:
        # The webhook check resolves its host name (blocking DNS), the output check reads its
        # destination (sync Redis): not on the event loop.
        record = await run_in_threadpool(new_record, services, body)
    else:
        record = new_record(services, body)
    return await create_and_enqueue_async(services, record)


def retry(services: Services, original: RunRecord) -> RunRecord:
    """A new run with the same request (seed included, so the same images), priority and webhook."""
    record = RunRecord(
        run_id=new_run_id(),
        operation=original.operation,
        model_id=original.model_id,
        loras=original.loras,
        request=original.request,
        priority=original.priority,
        webhook=original.webhook,
        output=checked_output(services, original.output),
        retry_of=original.run_id,
        template_id=original.template_id,
        style_preset=original.style_preset,
        input_prompt=original.input_prompt,
    )
    return create_and_enqueue(services, record)
