"""LimeWire's routes. Each image request becomes an ordinary renderq run under the caller's key
(text-to-image or image-to-image, upscale, outpaint, inpaint), waited for up to
RENDERQ_COMPAT_WAIT_SECONDS as LimeWire answers synchronously, and answered in LimeWire's shape."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ...inputs import read_body, validate_body
from ...routes.assets import upload_asset
from ...services import Services, services_of
from ..common import refused, submit
from ..runs import completed
from .answers import PREFIX, LimeWireAnswer, answer
from .fields import (
    GenerateFields, InpaintFields, OutpaintFields, UpscaleFields, generate_body, inpaint_body, outpaint_body, upscale_body,
)

router = APIRouter(prefix=PREFIX.rstrip("/"), tags=["compat: LimeWire"])
RESPONSES = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "LimeWire's answer; the image itself with `Accept: image/png` and one sample"},
    400: {"description": "RFC 7807: validation, unknown asset, a field renderq cannot serve (`errors` names it)"},
    402: {"description": "RFC 7807: the tenant is short of credits"},
    500: {"description": "RFC 7807: the run failed (`run_id` names it)"},
    504: {"description": "RFC 7807: the run did not end within RENDERQ_COMPAT_WAIT_SECONDS; `run_id` names it"},
}


def _doc(fields: type[BaseModel], files: tuple[str, ...]) -> dict:
    schema = fields.model_json_schema()
    multipart = {**schema, "properties": {**schema["properties"], **{name: {"type": "string", "format": "binary"} for name in files}}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema},
                                                          "multipart/form-data": {"schema": multipart}}}}


async def _read(request: Request, services: Services, fields_type: type[BaseModel]) -> tuple[BaseModel, dict[str, bytes], bool]:
    """(LimeWire's fields, file parts, whether to answer image/png)."""
    version = request.headers.get("x-api-version")
    if version is not None and version.strip().lower() != "v1":
        raise refused("X-Api-Version", f"renderq speaks LimeWire's v1 only, not {version!r}", status=400)
    data, files = await read_body(request, services.settings)
    fields = validate_body(fields_type, {k: v for k, v in data.items() if k not in files})
    accept = request.headers.get("accept", "application/json")
    png = "image/png" in accept and "application/json" not in accept
    if png and getattr(fields, "samples", 1) != 1:
        raise refused("Accept", "image/png answers one image; ask samples=1 or Accept: application/json", status=400)
    return fields, files, png


async def _run(services: Services, operation: str, body: dict, files: dict[str, bytes], png: bool):
    record = await submit(services, operation, body, files or None)
    return await answer(services, await completed(services, record), png)


@router.post("/image/generation", response_model=LimeWireAnswer, responses=RESPONSES, openapi_extra=_doc(GenerateFields, ("image",)),
             summary="LimeWire: generate an image (text-to-image, or image-to-image with an image)")
async def generate(request: Request) -> Response | LimeWireAnswer:
    services = services_of(request)
    fields, files, png = await _read(request, services, GenerateFields)
    operation, body = generate_body(fields, bool(files.get("image") or fields.image or fields.image_asset_id))
    return await _run(services, operation, body, files, png)


@router.post("/image/upscaling", response_model=LimeWireAnswer, responses=RESPONSES, openapi_extra=_doc(UpscaleFields, ("image",)),
             summary="LimeWire: upscale an image ×2, ×3 or ×4")
async def upscale(request: Request) -> Response | LimeWireAnswer:
    services = services_of(request)
    fields, files, png = await _read(request, services, UpscaleFields)
    return await _run(services, "upscale", upscale_body(fields), files, png)


@router.post("/image/outpainting", response_model=LimeWireAnswer, responses=RESPONSES, openapi_extra=_doc(OutpaintFields, ("image",)),
             summary="LimeWire: extend an image up, down, left, right or all round")
async def outpaint(request: Request) -> Response | LimeWireAnswer:
    services = services_of(request)
    fields, files, png = await _read(request, services, OutpaintFields)
    return await _run(services, "outpaint", outpaint_body(fields), files, png)


@router.post("/image/inpainting", response_model=LimeWireAnswer, responses=RESPONSES,
             openapi_extra=_doc(InpaintFields, ("image", "mask")),
             summary="LimeWire: repaint the pixels of mask_color_rgba (default: transparent) in the mask or image")
async def inpaint(request: Request) -> Response | LimeWireAnswer:
    services = services_of(request)
    fields, files, png = await _read(request, services, InpaintFields)
    return await _run(services, "inpaint", inpaint_body(fields), files, png)


class Uploaded(BaseModel):
    id: str
    self: str
    type: str
    width: int
    height: int
    expires_at: str


@router.post("/upload", response_model=Uploaded, responses={400: RESPONSES[400]}, summary="LimeWire: upload an asset (≤ 10 MB, kept 24 h)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "image/png": {"schema": {"type": "string", "format": "binary"}},
                 "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                 "image/webp": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload(request: Request, response: Response) -> Uploaded:
    """The raw image as the body, as LimeWire takes it (renderq's POST /v1/assets underneath)."""
    asset = await upload_asset(request, response, services_of(request))
    response.status_code = 200
    return Uploaded(id=asset.asset_id, self=f"/v1/assets/{asset.asset_id}", type=asset.content_type, width=asset.width,
                    height=asset.height, expires_at=asset.expires_at.isoformat())
