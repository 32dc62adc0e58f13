"""The one way runs are created. Every create (POST /v1/generations, every operation, each item
of a batch, a retry) and the cost estimate go through here: the body, validated once at the
edge, is resolved against the deployment (template, models, input images, sizes), turned into
its operation's typed request, and written with its queue message in one Redis transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from core import tenancy
from core.queue import enqueue_render, render_message
from pipelines.operation import RequestRejected
from pipelines.request_parts import InputSizeError, RenderRequest
from pipelines.text_to_image.request import BACKGROUND_REMOVER
from storage import fair_share
from storage.render_groups import group_id
from storage.destinations import parse_output
from storage.records import RunRecord, WebhookTarget, new_run_id
from storage.redis_ops import Op, run, run_async
from storage.webhook_targets import UnsafeWebhookUrl, check_webhook_url

from .bodies import OperationCreate
from .input_checks import check_input_images
from .inputs import InputImage, resolve_slot
from .model_selection import resolve_control_models, resolve_models
from core.problems import ProblemError
from .services import Services
from .templates import Applied, apply_template


@dataclass
class Prepared:
    """A body checked against the deployment: what a run record is made from."""

    body: OperationCreate
    request: RenderRequest  # input slots not yet stored: their asset ids come with `store_inputs`
    inputs: dict[str, InputImage]
    model_id: str = ""
    loras: dict[str, float] | None = None
    applied: Applied | None = None

    def input_sizes(self) -> dict[str, tuple[int, int]]:
        return {slot: (image.info.width, image.info.height) for slot, image in self.inputs.items()}


def prepare(services: Services, body: OperationCreate, files: dict[str, bytes] | None = None,
            estimate: bool = False) -> Prepared:
    """Template, deployment defaults, input images, models and input sizes, each checked once;
    a problem (4xx) for the first thing that does not hold. Stores nothing. `estimate`: for a
    cost estimate, where input images and models may be left out."""
    operation = body.OPERATION
    applied = None
    if operation.templates:
        body, applied = apply_template(body, services.templates)
    try:
        body.resolve_defaults(services)
    except RequestRejected as exc:
        raise ProblemError(exc.slug, exc.status, detail=exc.detail) from None
    inputs = {}
    for slot in body.SLOTS:
        required = slot in body.REQUIRED_SLOTS and not estimate
        image = resolve_slot(slot, body, files or {}, services.assets, services.settings, required=required)
        if image is not None:
            inputs[slot] = image
    prepared = Prepared(body, body.to_request(), inputs, applied=applied)
    if not estimate:
        _choose_models(services, prepared)
    try:
        if inputs or not estimate:
            prepared.request.check_input_sizes(prepared.input_sizes())
    except InputSizeError as exc:
        raise ProblemError("invalid-image", 422, detail=str(exc)) from None
    if not estimate:
        check_input_images(prepared)
    return prepared


def _choose_models(services: Services, prepared: Prepared) -> None:
    """The models the run renders with, checked against the catalog and recorded, so the worker
    renders with exactly what was checked."""
    operation, body, request = prepared.body.OPERATION, prepared.body, prepared.request
    catalog = services.catalog
    if operation.model_kind is None:
        return
    prepared.model_id, prepared.loras = resolve_models(body, catalog, operation.model_kind)
    if operation.model_kind != "base" and request.uses_model and not body.model_id and catalog.first(operation.model_kind) is None:
        hint = " (or mode \"fast\")" if operation.name == "upscale" else ""
        raise ProblemError("unknown-model", 422, detail=f"this deployment serves no {operation.model_kind} model{hint}; see GET /v1/models")
    if getattr(request, "background", None) == "transparent" and catalog.first(BACKGROUND_REMOVER) is None:
        message = f"transparent cuts the images out with a {BACKGROUND_REMOVER} model, and this deployment serves none"
        raise ProblemError("validation-error", 422, detail=f"background: {message}; see GET /v1/models",
                           errors=[{"field": "background", "message": message, "type": "unsupported"}],
                           openai_code="unsupported_value")
    if operation.mask_model_kind:
        _check_mask_model(services, operation.mask_model_kind, request.mask_model())
    needs = request.control_needs()
    if needs is not None:
        prepared.request = request.model_copy(update=resolve_control_models(needs, catalog, prepared.model_id))


def _check_mask_model(services: Services, kind: str, mask_model_id: str) -> None:
    """The text-segmentation model a search edit names (or the first served) exists."""
    if mask_model_id and services.catalog.get(mask_model_id, kind) is None:
        raise ProblemError("unknown-model", 422, detail=f"mask_model_id: no {kind} model {mask_model_id!r}; GET /v1/models lists them")
    if not mask_model_id and services.catalog.first(kind) is None:
        raise ProblemError("unknown-model", 422, detail=f"this deployment serves no {kind} model; see GET /v1/models")


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


def new_record(services: Services, prepared: Prepared, where: str = "", checked_outputs: set[str] | None = None,
               **fields) -> RunRecord:
    """The run record of a prepared body: its input images stored as assets, its delivery
    options checked (webhook URL, output destination)."""
    body, now = prepared.body, time.time()
    request = prepared.request
    if prepared.inputs:
        request = request.model_copy(update={f"{slot}_asset_id": image.store(services.assets) for slot, image in prepared.inputs.items()})
    key = request.render_key(prepared.input_sizes()) if services.settings.max_batch > 1 else None
    pool = services.catalog.pool_of(prepared.model_id)
    record = RunRecord(
        run_id=new_run_id(), operation=body.OPERATION.name, model_id=prepared.model_id, loras=prepared.loras or {},
        request=request.model_dump(mode="json"), created_at=now, priority=body.priority,
        render_group=None if key is None else group_id(body.OPERATION.name, prepared.model_id, prepared.loras or {}, key, pool),
        pool=pool,
        webhook=webhook_target(services, body.webhook_url, body.webhook_events, where),
        start_deadline=now + body.start_within if body.start_within else None, previews=body.previews,
        output=checked_output(services, body.output, where, checked_outputs),
        **(prepared.applied.record_fields() if prepared.applied else {}), **fields,
    )
    record.typed_request = request  # priced at admission without reading `request` back
    return record


def _create_op(services: Services, records: list[RunRecord], **batch) -> tuple[Op[list[RunRecord]], bool]:
    """(the write of the records, whether they still need `enqueue` afterwards). Records and
    their queue messages go in one Redis transaction when the broker is that Redis: one round
    trip, Celery's producer (~0.6 ms a message) skipped, and never a record without its message.
    Otherwise write, then `send_task`. Under fair share every message goes through its tenant's
    admission (storage/fair_share.py: pushed, or staged beside the run), one EVAL for them all."""
    settings = services.settings
    messages = []
    fair = settings.fair_share_slots > 0
    if not settings.embedded and settings.effective_broker_url == settings.redis_url:
        for record in records:
            message = render_message(services.celery, record.run_id, record.attempt, record.priority.value, record.pool)
            if message and fair:
                record.queue_message, record.queue = message, message[0]
            elif record.render_group:
                record.queue_message = message  # pushed with a copy kept beside it (storage/render_groups.py)
            elif message:
                messages.append(message)
    admitted = [record for record in records if record.queue]
    queued = bool(messages) or any(record.queue_message for record in records)

    def also(pipe) -> None:
        for message in messages:
            pipe.lpush(*message)
        if admitted:
            fair_share.submit(pipe, admitted, settings.fair_share_slots, settings.retention_seconds)

    return services.runs.create_many_op(records, also=also if messages or admitted else None, **batch), not queued


def enqueue(services: Services, records: list[RunRecord]) -> None:
    try:
        for record in records:
            enqueue_render(services.celery, record.run_id, record.attempt, record.priority.value, record.pool)
    except Exception:
        # Broker unreachable: not accepted (the caller gets a 503 and may retry), so leave no
        # queued orphan behind and give back the key's slots.
        from .auth import release_runs

        for record in records:
            services.runs.discard(record.run_id)
        release_runs(services, [record.run_id for record in records])
        raise


def create(services: Services, records: list[RunRecord], **batch) -> list[RunRecord]:
    """Write the records (and their batch) and queue them. `batch`: batch_id, batch_webhook."""
    op, then_enqueue = _create_op(services, records, **batch)
    run(services.runs.redis, op)
    if then_enqueue:
        enqueue(services, records)
    return records


def submit(services: Services, body: OperationCreate, files: dict[str, bytes] | None = None) -> RunRecord:
    """One run from one body; blocking I/O (input images, DNS, Redis): the thread pool's."""
    return create(services, [new_record(services, prepare(services, body, files))])[0]


async def submit_async(services: Services, body: OperationCreate) -> RunRecord:
    """The same on the event loop (redis.asyncio), for bodies without input images; only what
    blocks (a webhook's DNS check, an output's destination read, Celery's own producer) goes to
    a thread."""
    prepared = prepare(services, body)
    if body.webhook_url is not None or body.output is not None:
        record = await run_in_threadpool(new_record, services, prepared)
    else:
        record = new_record(services, prepared)
    op, then_enqueue = _create_op(services, [record])
    await run_async(services.async_redis, op)
    if then_enqueue:
        await run_in_threadpool(enqueue, services, [record])
    return record


def retry(services: Services, original: RunRecord) -> RunRecord:
    """A new run with the same request (seed included, so the same images), priority and webhook."""
    record = RunRecord(
        run_id=new_run_id(),
        operation=original.operation,
        model_id=original.model_id,
        loras=original.loras,
        request=original.request,
        priority=original.priority,
        pool=services.catalog.pool_of(original.model_id),  # today's pools: the deployment may have changed
        webhook=original.webhook,
        previews=original.previews,
        output=checked_output(services, original.output),
        retry_of=original.run_id,
        template_id=original.template_id,
        style_preset=original.style_preset,
        input_prompt=original.input_prompt,
    )
    return create(services, [record])[0]
