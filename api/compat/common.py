"""What every dialect adapter shares: submitting a native body under the caller's key (the one
submit path, api/submission), waiting for a run up to a bound, and refusing a documented field
renderq cannot serve, per field. The adapters translate; nothing here is per service."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from core.problems import ProblemError
from storage.records import RunRecord

from .. import submission
from ..bodies import BODIES
from ..inputs import validate_body
from ..prefer_wait import wait_for_end
from ..services import Services


def refused(field: str, message: str, status: int = 422, **extra) -> ProblemError:
    """A field the service documents, asking for something renderq cannot do: a validation
    problem naming it (each dialect's envelope words it in the service's shape)."""
    return ProblemError("validation-error", status, detail=f"{field}: {message}",
                        errors=[{"field": field, "message": message, "type": "unsupported"}], **extra)


def native_extras(extra: dict, operation: str, blocked: Iterable[str] = ()) -> dict:
    """Top-level fields beyond the service's own: renderq's knobs of `operation`'s body (seed,
    num_inference_steps, …), passed through; an unknown one, or one the service's own field
    already sets (`blocked`), is refused by name."""
    fields = BODIES[operation].model_fields
    out = {}
    for name, value in extra.items():
        if name in blocked or name not in fields:
            raise refused(name, "unknown field (neither the service's nor one of renderq's)")
        out[name] = value
    return out


def native_body(operation: str, fields: dict) -> BaseModel:
    """`fields` as `operation`'s native body, or renderq's 422 validation problem."""
    return validate_body(BODIES[operation], fields)


async def submit(services: Services, operation: str, fields: dict, files: dict[str, bytes] | None = None) -> RunRecord:
    """An ordinary run (listed, billed, retained, webhooks) under the caller's key."""
    body = native_body(operation, fields)
    if files:
        return await run_in_threadpool(submission.submit, services, body, files)
    if any(getattr(body, slot, None) or getattr(body, f"{slot}_asset_id", None) for slot in body.SLOTS):
        return await run_in_threadpool(submission.submit, services, body)
    return await submission.submit_async(services, body)


def not_finished(record: RunRecord, waited: float, headers: dict[str, str] | None = None, **extra) -> ProblemError:
    """The run is still going after the bound: a 504 naming it, so it can be polled natively."""
    return ProblemError(
        "internal-error", 504, detail=f"the run did not end within {waited:g} s (status {record.status.value}); it goes on: "
        f"poll GET /v1/generations/{record.run_id}", run_id=record.run_id,
        headers={"Location": f"/v1/generations/{record.run_id}", **(headers or {})}, **extra,
    )


async def wait_for_run(services: Services, record: RunRecord, seconds: float | None = None) -> RunRecord:
    """The run once it has ended, waiting up to `seconds` (RENDERQ_COMPAT_WAIT_SECONDS by
    default); past that, `not_finished`."""
    waited = services.settings.compat_wait_seconds if seconds is None else seconds
    record = await wait_for_end(services, record, waited)
    if not record.status.is_final:
        raise not_finished(record, waited)
    return record
