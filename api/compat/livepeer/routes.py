"""Livepeer's POST /image-to-image: an ordinary renderq run (image-to-image, or general-edit for
the instruct model) under the caller's key, waited for up to RENDERQ_COMPAT_WAIT_SECONDS as
Livepeer answers synchronously, answered as `{"images": [{"url", "seed", "nsfw"}]}`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.problems import ProblemError

from ...inputs import read_body, validate_body
from ...run_views import run_view_async
from ...services import services_of
from ..common import submit
from ..runs import completed
from ..errors import ErrorShape, slug_of
from .fields import THEIR_NAMES, ImageToImageFields, native_fields

PREFIX = "/compat/livepeer/"
router = APIRouter(prefix=PREFIX.rstrip("/"), tags=["compat: Livepeer"])


class Media(BaseModel):
    url: str
    seed: int
    nsfw: bool = Field(False, description="Always false: renderq runs no safety checker (see safety_check).")


class SafetyCheck(BaseModel):
    requested: bool
    performed: bool = Field(False, description="renderq runs no safety checker; nothing was checked.")


class ImageResponse(BaseModel):
    images: list[Media]
    safety_check: SafetyCheck
    run_id: str = Field(..., description="renderq's run: GET /v1/generations/{run_id}.")


def _form_schema() -> dict:
    schema = ImageToImageFields.model_json_schema()
    properties = {**schema["properties"], "image": {"type": "string", "format": "binary", "description": "The image to modify."}}
    return {**schema, "properties": properties, "required": ["image", "prompt"]}


RESPONSES = {
    400: {"description": '`{"detail": {"msg"}}`: a bad request (an image that cannot be read, an unknown asset)'},
    401: {"description": '`{"detail": {"msg"}}`: no or unknown API key'},
    402: {"description": '`{"detail": {"msg"}}`: the tenant is short of credits'},
    422: {"description": '`{"detail": [{"loc", "msg", "type"}]}`: validation, and a field renderq cannot serve, per field'},
    500: {"description": '`{"detail": {"msg", "run_id"}}`: the run failed'},
    504: {"description": '`{"detail": {"msg", "run_id"}}`: the run did not end within RENDERQ_COMPAT_WAIT_SECONDS'},
}


@router.post("/image-to-image", response_model=ImageResponse, responses=RESPONSES, summary="Livepeer: image-to-image",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _form_schema()}}}})
async def image_to_image(request: Request) -> Response:
    services = services_of(request)
    data, files = await read_body(request, services.settings)
    fields = validate_body(ImageToImageFields, {k: v for k, v in data.items() if k not in files})
    if "image" not in files and fields.image is None:
        raise ProblemError("validation-error", 422, detail="image: Field required",
                           errors=[{"field": "image", "message": "Field required", "type": "missing"}])
    operation, body = native_fields(services.catalog, fields)
    record = await completed(services, await submit(services, operation, body, {"image": files["image"]} if "image" in files else None))
    view = await run_view_async(record, services)
    answer = ImageResponse(
        images=[Media(url=image.url or image.object_uri or "", seed=image.seed) for image in view.images if image.role == "image"],
        safety_check=SafetyCheck(requested=fields.safety_check), run_id=record.run_id,
    )
    return JSONResponse(answer.model_dump(), headers={"X-Safety-Check": "not-run"})


def envelope(problem: dict) -> tuple[int, dict]:
    """Validation (renderq's, and a field renderq cannot serve): 422 with FastAPI's
    `{"detail": [{"loc", "msg", "type"}]}`, as Livepeer's runner answers; anything else
    `{"detail": {"msg"}}` (with `run_id` where there is one), 400 for what renderq answers 422."""
    status = int(problem.get("status") or 500)
    errors = problem.get("errors") or []
    if slug_of(problem) == "validation-error" and errors:
        return 422, {"detail": [{"loc": ["body", THEIR_NAMES.get(e.get("field"), e.get("field"))], "msg": e.get("message", ""),
                                 "type": e.get("type", "")} for e in errors]}
    detail = {"msg": problem.get("detail") or problem.get("title") or slug_of(problem)}
    if problem.get("run_id"):
        detail["run_id"] = problem["run_id"]
    return 400 if status == 422 else status, {"detail": detail}


_MESSAGE = {"type": "object", "required": ["msg"], "properties": {"msg": {"type": "string"}, "run_id": {"type": "string"}}}
_FIELD_ERRORS = {"type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
    "loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"}, "type": {"type": "string"}}}}
SHAPE = ErrorShape(PREFIX, envelope, schema={"type": "object", "required": ["detail"],
                                             "properties": {"detail": {"anyOf": [_MESSAGE, _FIELD_ERRORS]}}})
