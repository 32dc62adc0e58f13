"""A finished run as LimeWire's answer (`id`, `status`, `credits_used`, `credits_remaining`,
`data[]` of assets), or its one image as `image/png`; and LimeWire's RFC 7807 errors."""

from __future__ import annotations

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from storage.records import RunRecord

from ...run_views import run_view_async
from ...services import Services
from ..errors import ErrorShape
from .fields import THEIR_NAMES

PREFIX = "/compat/limewire/"


class AssetItem(BaseModel):
    asset_id: str | None = Field(None, description="Feed it to the next request as image_asset_id.")
    self: str | None = Field(None, description="renderq's asset resource.")
    asset_url: str | None = Field(None, description="Signed URL, valid while the run is kept (24 h).")
    type: str = "image/png"
    width: int
    height: int


class LimeWireAnswer(BaseModel):
    id: str = Field(..., description="renderq's run id: GET /v1/generations/{id}.")
    self: str
    status: str = Field(..., examples=["COMPLETED"])
    failure_reason: str | None = None
    credits_used: float | None = None
    credits_remaining: float | None = Field(None, description="null for a tenant without a credit balance.")
    data: list[AssetItem]


async def answer(services: Services, record: RunRecord, png: bool) -> Response | LimeWireAnswer:
    """LimeWire's JSON answer of a completed run (api/compat/runs.completed), or (`png`) its one
    image's bytes."""
    view = await run_view_async(record, services)
    images = [image for image in view.images if image.role == "image"]
    if png:
        data = await run_in_threadpool(services.images.get, record.images[0].key)
        headers = {"X-Run-Id": record.run_id, "X-Credits-Used": str(view.credits_used),
                   "X-Credits-Remaining": str(view.credits_remaining)}
        return Response(data, media_type="image/png", headers=headers)
    return LimeWireAnswer(
        id=record.run_id, self=f"/v1/generations/{record.run_id}", status="COMPLETED", credits_used=view.credits_used,
        credits_remaining=view.credits_remaining,
        data=[AssetItem(asset_id=image.asset_id, self=f"/v1/assets/{image.asset_id}" if image.asset_id else None,
                        asset_url=image.url or image.object_uri, type=image.content_type, width=image.width,
                        height=image.height) for image in images],
    )


def envelope(problem: dict) -> tuple[int, dict]:
    """renderq's problem document, in LimeWire's spelling: its field names in `errors`, and 400
    (LimeWire documents 400 for every request it cannot take) for what renderq answers 422."""
    status = int(problem.get("status") or 500)
    body = dict(problem)
    if status == 422:
        body["status"] = status = 400
    errors = body.get("errors") or []
    if errors:
        body["errors"] = [error | {"field": THEIR_NAMES.get(error.get("field"), error.get("field"))} for error in errors]
        body["detail"] = "; ".join(f"{error['field'] or 'body'}: {error.get('message', '')}" for error in body["errors"][:5])
    return status, body


SHAPE = ErrorShape(PREFIX, envelope, "application/problem+json", schema={"$ref": "#/components/schemas/Problem"})
