"""/v1/generations: the list of runs, and what a caller can do to a run (cancel, retry)."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from storage.records import RunStatus
from storage.run_listing import Filters, list_runs

from .. import submission
from core.problems import ProblemError
from ..problems import PROBLEM_RESPONSES
from ..run_views import missing_run, run_view
from ..schemas import RunView
from ..services import Services, get_services
from .generations import RunId

router = APIRouter(prefix="/v1/generations", tags=["generations"])

RETRYABLE = (RunStatus.failed, RunStatus.canceled, RunStatus.expired)
# A status-filtered page reads at most this many index entries per returned run; a rare status
# gives short pages (with a cursor to go on) rather than one slow request.
SCAN_FACTOR = 20


class RunPage(BaseModel):
    data: list[RunView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; None at the end.")


def _responses(*codes: int) -> dict:
    return {k: v for k, v in PROBLEM_RESPONSES.items() if k in codes}


# What pydantic reads as a datetime: an ISO 8601 string, or epoch seconds.
_WHEN = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}


@router.get("", response_model=RunPage, responses=_responses(422, 503), summary="List runs, newest first")
def list_generations(
    status: RunStatus | None = Query(None),
    batch_id: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    created_after: datetime | None = Query(None, description="Runs created at or after this time (ISO 8601 or epoch seconds).",
                                           json_schema_extra=_WHEN),
    created_before: datetime | None = Query(None, description="Runs created before this time.", json_schema_extra=_WHEN),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
    services: Services = Depends(get_services),
) -> RunPage:
    """The caller's own runs (of one batch, a status, a time range), newest first: read from an
    index of the caller's runs alone, so other tenants' runs never push the caller's off a
    page. Pages are stable while runs are added."""
    filters = Filters(status, batch_id, _epoch(created_after), _epoch(created_before))
    try:
        page = list_runs(services.runs.redis, services.runs.index, filters, cursor, limit, SCAN_FACTOR)
    except ValueError as exc:
        raise ProblemError("validation-error", 422, detail=f"cursor: not a cursor this API gave ({exc})") from exc
    return RunPage(data=[run_view(record, services) for record in page.records], next_cursor=page.next_cursor)


def _epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@router.post(
    "/{run_id}/cancel",
    response_model=RunView,
    responses=_responses(404, 410, 503) | {202: {"description": "Running: it stops at its next denoising step."}},
    summary="Cancel a run",
)
def cancel_generation(response: Response, run_id: str = RunId, services: Services = Depends(get_services)) -> RunView:
    """A queued run never starts (200, `canceled`); a running run is asked to stop at its next
    denoising step and ends `canceled` (202 now); an ended run answers with its final state.
    Idempotent."""
    outcome = services.runs.cancel(run_id)
    if outcome == "missing":
        raise missing_run(services, run_id)
    record = services.runs.get(run_id)
    if record is None:
        raise missing_run(services, run_id)
    response.status_code = 200 if record.status.is_final else 202
    return run_view(record, services)


@router.post(
    "/{run_id}/retry",
    status_code=202,
    response_model=RunView,
    responses=_responses(402, 404, 410, 422, 503) | {409: PROBLEM_RESPONSES[422] | {"description": "not retryable"}},
    summary="Re-run a failed, canceled or expired run under a new run id",
)
def retry_generation(response: Response, run_id: str = RunId, services: Services = Depends(get_services)) -> RunView:
    original = services.runs.get(run_id)
    if original is None:
        raise missing_run(services, run_id)
    if original.status not in RETRYABLE:
        raise ProblemError("not-retryable", 409, detail=f"run {run_id} is {original.status.value}")
    record = submission.retry(services, original)
    response.headers["Location"] = f"{router.prefix}/{record.run_id}"
    return run_view(record, services)
