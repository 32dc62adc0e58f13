"""Live previews of running runs at signed URLs (`preview_url` in the run view): fetched by an
<img> or a poller without its API key, like local storage's file URLs; kept by
storage/previews.py in Redis, for a minute at most and never past the run's end."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from core.problems import ProblemError
from storage.local import sign
from storage.previews import PREVIEWS_ROUTE, preview_signed_key

from ..services import Services, get_services

router = APIRouter(tags=["generations"], include_in_schema=False)


@router.get(PREVIEWS_ROUTE + "{run_id}")
async def get_preview(
    run_id: str,
    expires: int = Query(...),
    signature: str = Query(..., max_length=128),
    services: Services = Depends(get_services),
) -> Response:
    """The run's latest preview (a JPEG), whichever `id` the URL was signed for."""
    secret = services.settings.url_secret.get_secret_value()
    if time.time() >= expires or not hmac.compare_digest(sign(secret, preview_signed_key(run_id), expires), signature):
        raise ProblemError("not-found", 404, detail="no such preview, or its URL has expired")
    preview = await run_in_threadpool(services.runs.previews.get, run_id)
    if preview is None:
        raise ProblemError("not-found", 404, detail="no preview of this run now: it has ended, or has none yet")
    return Response(preview.data, media_type=preview.content_type, headers={
        "Cache-Control": "private, max-age=60", "X-Preview-Id": str(preview.id), "X-Preview-Step": str(preview.step),
    })
