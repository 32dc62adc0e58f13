"""/v1/generations: submit a text-to-image run, read its status."""

from __future__ import annotations

from fastapi import APIRouter, Header, Path, Request, Response

from storage.redis_ops import run_async

from .. import submission
from ..problems import PROBLEM_RESPONSES
from ..prefer_wait import apply_prefer_wait
from ..run_views import missing_run_op, run_view_async, view_response
from ..bodies import GenerationCreate
from ..schemas import RunView
from ..services import services_of

router = APIRouter(prefix="/v1/generations", tags=["generations"])

RunId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The run_id returned at submit.")


@router.post(
    "",
    status_code=202,
    response_model=RunView,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 402, 422, 503)},
    summary="Submit a text-to-image run",
)
async def submit_generation(
    body: GenerationCreate,
    request: Request,
    prefer: str | None = Header(None, description="`wait=N`: hold the answer up to N seconds (capped) for the run to end."),
) -> Response:
    """Validates, records and enqueues the run, then answers at once with `status: queued`
    (202), or with `Prefer: wait=N` the finished run (200) if it ends within N seconds.
    No model work happens in the API process."""
    # async, on redis.asyncio: the hottest routes skip the thread-pool hop a sync route costs,
    # and take the services from the request rather than a dependency FastAPI must solve.
    services = services_of(request)
    record = await submission.submit_async(services, body)
    headers = {"Location": f"{router.prefix}/{record.run_id}"}
    record, status_code = await apply_prefer_wait(services, record, prefer, headers)
    # The submit's estimate reads what the workers hold now (storage/render_stats.py, api/estimates.py).
    return view_response(await run_view_async(record, services, fresh_estimate=True), status_code, headers)


@router.get(
    "/{run_id}",
    response_model=RunView,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (404, 410, 503)},
    summary="Status, progress and temporary image URLs of a run",
)
async def get_generation(request: Request, run_id: str = RunId) -> Response:
    services = services_of(request)
    record = await run_async(services.async_redis, services.runs.get_op(run_id))
    if record is None:
        raise await run_async(services.async_redis, missing_run_op(services, run_id))
    return view_response(await run_view_async(record, services))
