"""/v1/assets: upload an input image (LimeWire's /upload: ≤ 10 MB, kept 24 hours) and read
an asset back. Generated images are assets too (`images[].asset_id` of a run)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from storage.assets import ASSET_ID_PATTERN, Asset
from storage.image_codec import ImageRejected, decode_base64, open_image
from storage.images import url_lifetime

from ..inputs import MULTIPART, read_body, rejected, store_upload
from core.problems import ProblemError
from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(prefix="/v1/assets", tags=["assets"])

RAW_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


class AssetView(BaseModel):
    asset_id: str = Field(..., examples=["ast_0123456789abcdef01234567"], description="Use as image_asset_id / mask_asset_id.")
    content_type: str
    width: int
    height: int
    bytes: int
    source: str = Field(..., description="`upload`, or the run_id that generated the image.")
    created_at: datetime
    expires_at: datetime = Field(..., description="The asset (and its URL) is gone after this: 24 hours after upload.")
    url: str | None = Field(None, description="Temporary URL of the image, re-signed on every read.")


def asset_view(asset: Asset, services: Services) -> AssetView:
    lifetime = url_lifetime(services.settings, asset.expires_at)
    return AssetView(
        **asset.model_dump(exclude={"key", "created_at", "expires_at"}),
        created_at=datetime.fromtimestamp(asset.created_at, tz=timezone.utc),
        expires_at=datetime.fromtimestamp(asset.expires_at, tz=timezone.utc),
        url=services.images.signed_url(asset.key, lifetime) if lifetime > 0 else None,
    )


async def _upload_bytes(request: Request, services: Services) -> bytes:
    """The image of an upload: the raw body (image/png, image/jpeg, image/webp, as LimeWire
    takes it), a multipart `file` or `image` part, or JSON {"image": base64 / data URL}."""
    settings = services.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in RAW_IMAGE_TYPES or content_type == "application/octet-stream":
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes:
            raise ProblemError("payload-too-large", 413, detail=f"the image is {length} bytes; the limit is {settings.max_upload_bytes}")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > settings.max_upload_bytes:
                raise ProblemError("payload-too-large", 413, detail=f"the image is over the limit of {settings.max_upload_bytes} bytes")
        return bytes(data)
    fields, files = await read_body(request, settings)
    if content_type == MULTIPART:
        for name in ("file", "image"):
            if name in files:
                return files[name]
        raise ProblemError("validation-error", 422, detail="send the image as a `file` (or `image`) part")
    image = fields.get("image") or fields.get("image_base64")
    if not isinstance(image, str):
        raise ProblemError("validation-error", 422, detail='send {"image": "<base64 or data URL>"}')
    try:
        return decode_base64(image, settings.max_upload_bytes)
    except ImageRejected as exc:
        raise rejected(exc, "image") from None


@router.post(
    "",
    status_code=201,
    response_model=AssetView,
    responses={**{k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 422, 503)},
               413: {"description": "over 10 MB, or over the pixel limit"},
               415: {"description": "not a PNG, JPEG or WebP image"}},
    summary="Upload an input image (≤ 10 MB, PNG/JPEG/WebP, kept 24 hours)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary", "description": "The image file (or part name `image`)."}}, "required": ["file"]}},
        "application/json": {"schema": {"type": "object", "properties": {"image": {"type": "string", "description": "base64 or a data URL (alias image_base64)."}}, "required": ["image"],
                                        "examples": [{"image": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}]}},
    }}},
)
async def upload_asset(request: Request, response: Response, services: Services = Depends(get_services)) -> AssetView:
    data = await _upload_bytes(request, services)
    settings = services.settings
    try:
        _, info = open_image(data, settings.max_upload_bytes, settings.max_input_pixels)
    except ImageRejected as exc:
        raise rejected(exc, "image") from None
    asset = await run_in_threadpool(store_upload, services.assets, data, info)
    response.headers["Location"] = f"{router.prefix}/{asset.asset_id}"
    return asset_view(asset, services)


@router.get(
    "/{asset_id}",
    response_model=AssetView,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (404, 503)},
    summary="An asset's size, type, expiry and temporary URL",
)
def get_asset(asset_id: str = Path(..., pattern=ASSET_ID_PATTERN), services: Services = Depends(get_services)) -> AssetView:
    asset = services.assets.get(asset_id)
    if asset is None or asset.expires_at <= time.time():
        raise ProblemError("not-found", 404, detail=f"no asset {asset_id} (never uploaded, or expired)")
    return asset_view(asset, services)
