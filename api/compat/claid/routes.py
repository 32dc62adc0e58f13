"""POST /compat/claid/v1/image/generate: Claid's image generation, as a renderq text-to-image
run (api/submission: listed, billed, retained, webhooks, under the caller's key), waited for up
to RENDERQ_COMPAT_WAIT_SECONDS and answered in Claid's shape."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from storage.destinations import parse_output
from storage.images import url_lifetime
from storage.records import RunRecord

from ...bodies import BODIES
from ...inputs import read_body, validate_body
from ...services import Services, services_of
from ..common import submit
from ..runs import completed, images_of
from .fields import ClaidGenerate, native_fields

router = APIRouter(prefix="/compat/claid/v1", tags=["claid"])
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


class ClaidImage(BaseModel):
    ext: str
    mps: float = Field(..., description="Megapixels.")
    mime: str
    format: str
    width: int
    height: int
    tmp_url: str = Field(..., description="Signed URL kept one day; empty when `output` was given.")
    object_key: str | None = None
    object_bucket: str | None = None
    object_uri: str | None = None
    claid_storage_uri: str | None = Field(None, description="storage://{destination}/{folder}/{file} with `output`.")


class ClaidData(BaseModel):
    input: dict
    output: list[ClaidImage]
    profiling: dict = Field(default_factory=dict, description="renderq's timings of the run.")
    run_id: str = Field(..., description="The renderq run: GET /v1/generations/{run_id}.")


class ClaidAnswer(BaseModel):
    data: ClaidData


class ClaidError(BaseModel):
    error_code: str
    error_type: str
    error_message: str
    error_details: dict


def _output(services: Services, record: RunRecord, now: float) -> list[dict]:
    lifetime = url_lifetime(services.settings, record.expires_at, now)
    items = []
    for image in images_of(record):
        ext = _EXTENSIONS.get(image.content_type, "png")
        item = {"ext": ext, "mps": image.width * image.height / 1e6, "mime": image.content_type, "format": ext.upper(),
                "width": image.width, "height": image.height, "tmp_url": ""}
        if image.object_uri:
            name, folder = parse_output(record.output or "")
            item |= {"object_key": image.key, "object_bucket": image.object_bucket, "object_uri": image.object_uri,
                     "claid_storage_uri": f"storage://{name}/{folder}{image.key.rsplit('/', 1)[-1]}"}
        else:
            item["tmp_url"] = services.urls.sign(image.key, lifetime, now)[0]
        items.append(item)
    return items


def answer(services: Services, record: RunRecord, text: str) -> dict:
    """Claid's answer for a completed run (blocking: URLs are signed)."""
    return {"data": {"input": {"text": text}, "output": _output(services, record, time.time()),
                     "profiling": record.timings, "run_id": record.run_id}}


_ERROR = {"model": ClaidError}


@router.post(
    "/image/generate", summary="Claid: generate images from a text prompt", response_model=ClaidAnswer,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": ClaidGenerate.model_json_schema()}}}},
    responses={401: _ERROR | {"description": "Authorization is required."}, 402: _ERROR | {"description": "No API calls left (credits)."},
               413: _ERROR | {"description": "The body is over its size limit."}, 415: _ERROR | {"description": "Not JSON."},
               422: _ERROR | {"description": "Unprocessable Entity: error_details names each field."},
               429: _ERROR | {"description": "Too many requests."}, 500: _ERROR | {"description": "The run failed."},
               503: _ERROR | {"description": "A dependency is unreachable."},
               504: _ERROR | {"description": "The run did not end in time; error_details.run_id names it."}},
)
async def generate(request: Request) -> JSONResponse:
    """Claid's `input` / `options` / `output`, rendered as a text-to-image run."""
    services = services_of(request)
    data, _ = await read_body(request, services.settings)
    claid = validate_body(ClaidGenerate, data)
    record = await submit(services, "text-to-image", native_fields(claid, BODIES["text-to-image"].model_fields))
    record = await completed(services, record)
    return JSONResponse(await run_in_threadpool(answer, services, record, claid.input))
