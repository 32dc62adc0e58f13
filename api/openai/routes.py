"""POST /v1/images/generations|edits|variations: OpenAI's Images API, so that
`OpenAI(base_url=".../v1", api_key=KEY)` works unchanged. Each request becomes an ordinary
renderq run (api/submission: listed, billed, retained, under the caller's key), waited for up
to RENDERQ_OPENAI_WAIT_SECONDS, and answered in OpenAI's shape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from core.problems import ProblemError

from .. import submission
from ..bodies import BODIES, OperationCreate
from ..inputs import MULTIPART, read_body, validate_body
from ..prefer_wait import wait_for_end
from ..services import Services, services_of
from .fields import EditFields, GenerationFields, ImagesFields, VariationFields, openai_error, renderq_fields
from .masks import alpha_mask
from .results import answer, not_finished
from .schemas import request_body_doc, responses_doc
from .streaming import stream_generation

router = APIRouter(prefix="/v1/images", tags=["openai"])


def _body(services: Services, operation: str, fields: ImagesFields, sized: bool = True, **extra) -> OperationCreate:
    if fields.model and services.catalog.get(fields.model) is None:
        raise ProblemError("unknown-model", 404, detail=f"The model `{fields.model}` does not exist or you do not have access "
                           "to it; GET /v1/models lists this deployment's models.")
    schema = BODIES[operation]
    return validate_body(schema, renderq_fields(fields, schema, sized) | extra)


async def _finish(services: Services, record, fields: ImagesFields) -> JSONResponse:
    waited = services.settings.openai_wait_seconds
    record = await wait_for_end(services, record, waited)
    if not record.status.is_final:
        raise not_finished(record, waited)
    return JSONResponse(await run_in_threadpool(answer, services, record, fields))


async def _read(request: Request, services: Services) -> tuple[dict, dict[str, list[bytes]]]:
    """Fields and files of a JSON or multipart body; files by part name, `image[]` as `image`."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != MULTIPART:
        fields, _ = await read_body(request, services.settings)
        return fields, {}
    limit = services.settings.max_upload_bytes
    form = await request.form(max_files=16, max_fields=64, max_part_size=limit * 4 // 3 + 1024)
    fields: dict = {}
    files: dict[str, list[bytes]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if value.size is not None and value.size > limit:
                raise ProblemError("payload-too-large", 413, detail=f"{name}: the file is {value.size} bytes; the limit is {limit}")
            files.setdefault(name.removesuffix("[]"), []).append(await value.read())
        else:
            fields[name] = value
    return fields, files


def _one_image(files: dict[str, list[bytes]], name: str, required: bool) -> bytes | None:
    given = files.get(name, [])
    if len(given) > 1:
        raise openai_error(f"renderq edits one {name} per request; {len(given)} were sent.", param=name, code="invalid_value")
    if not given and required:
        raise openai_error(f"'{name}' is required: send it as a multipart file part.", param=name, code="missing_required_parameter")
    return given[0] if given else None


@router.post("/generations", summary="OpenAI: create images from a prompt", response_model=None,
             openapi_extra={"requestBody": request_body_doc(GenerationFields)}, responses=responses_doc(streams=True))
async def create_images(request: Request) -> Response:
    """OpenAI's `images.generate`, rendered as a renderq text-to-image run; with `stream: true`,
    Server-Sent Events: partial images from the live previews, then the images."""
    services = services_of(request)
    data, _ = await _read(request, services)
    fields = validate_body(GenerationFields, data)
    record = await submission.submit_async(services, _body(services, "text-to-image", fields))
    if fields.stream:
        return stream_generation(request, services, record, fields)
    return await _finish(services, record, fields)


@router.post("/edits", summary="OpenAI: edit an image where its mask is transparent", response_model=None,
             openapi_extra={"requestBody": request_body_doc(EditFields, ("image", "mask"))}, responses=responses_doc())
async def edit_image(request: Request) -> JSONResponse:
    """OpenAI's `images.edit`, rendered as a renderq inpaint run: the mask's fully transparent
    pixels (or, without a mask, the image's own) are repainted."""
    services = services_of(request)
    data, files = await _read(request, services)
    fields = validate_body(EditFields, {k: v for k, v in data.items() if k not in ("image", "mask")})
    image = _one_image(files, "image", required="image" not in data)
    mask = _one_image(files, "mask", required=False)
    if image is None:  # JSON: a data URL or base64 in `image`, as renderq takes it
        body = _body(services, "inpaint", fields, sized=False, image=data["image"])
        record = await run_in_threadpool(submission.submit, services, body)
    else:
        body = _body(services, "inpaint", fields, sized=False)
        mask_png = await run_in_threadpool(alpha_mask, mask if mask is not None else image, services.settings)
        record = await run_in_threadpool(submission.submit, services, body, {"image": image, "mask": mask_png})
    return await _finish(services, record, fields)


@router.post("/variations", summary="OpenAI: variations of an image", response_model=None,
             openapi_extra={"requestBody": request_body_doc(VariationFields, ("image",))}, responses=responses_doc())
async def create_variations(request: Request) -> JSONResponse:
    """OpenAI's `images.create_variation`, rendered as a renderq variations run (one image
    unless `n` says more: OpenAI's default)."""
    services = services_of(request)
    data, files = await _read(request, services)
    fields = validate_body(VariationFields, {k: v for k, v in data.items() if k != "image"})
    image = _one_image(files, "image", required="image" not in data)
    extra = {"num_images": 1} if fields.n is None else {}
    if image is None:
        extra["image"] = data["image"]
    body = _body(services, "variations", fields, **extra)
    record = await run_in_threadpool(submission.submit, services, body, {"image": image} if image is not None else None)
    return await _finish(services, record, fields)


