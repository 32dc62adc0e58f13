"""POST /v1/{operation}: the image operations, one route each, all answering the same run
resource as /v1/generations (poll it at GET /v1/generations/{run_id})."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from pipelines.registry import OPERATIONS
from pipelines.requests import MAX_SEED, InputSizeError
from storage.records import RunRecord, new_run_id

from .. import submission
from ..inputs import file_part_names, read_body, resolve_slot, validate_body
from ..model_selection import resolve_control_models, resolve_models
from ..operation_schemas import CREATE_SCHEMAS, PLACEHOLDER_ASSET, OperationCreate
from ..problems import PROBLEM_RESPONSES, ProblemError
from ..run_views import run_view
from ..schemas import RunView
from ..services import Services, get_services
from ..templates import TemplateFields, apply_template

router = APIRouter(prefix="/v1", tags=["operations"])

_ERRORS = {
    **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 402, 422, 503)},
    413: {"description": "an input image or the body is over its size or pixel limit"},
    415: {"description": "not JSON/multipart, or an image that is not PNG, JPEG or WebP"},
}


def _request_body_doc(schema: type[OperationCreate]) -> dict:
    """Both body encodings in the OpenAPI document: JSON, and multipart with file parts."""
    json_schema = schema.model_json_schema(ref_template="#/components/schemas/{model}")
    multipart = {**json_schema, "properties": dict(json_schema["properties"])}
    multipart.pop("examples", None)
    for slot in schema.SLOTS:
        multipart["properties"][slot] = {"type": "string", "format": "binary", "description": f"The {slot} file (PNG, JPEG or WebP, ≤ 10 MB)."}
        for alias in file_part_names(schema, slot)[1:]:
            multipart["properties"][alias] = {"type": "string", "format": "binary", "description": f"Alias of the {slot} file part."}
    return {
        "required": True,
        "content": {"application/json": {"schema": json_schema}, "multipart/form-data": {"schema": multipart}},
    }


def prepare_run(operation: str, body: OperationCreate, files: dict[str, bytes], services: Services) -> RunRecord:
    """Check everything, store the input images as assets, write the record. Blocking I/O:
    runs in the thread pool."""
    spec = OPERATIONS[operation]
    applied = None
    if isinstance(body, TemplateFields):
        body, applied = apply_template(body, services.templates)
    body.resolve_defaults(services)
    inputs = {}
    for slot in body.SLOTS:
        image = resolve_slot(slot, body, files, services.assets, services.settings, required=slot in body.REQUIRED_SLOTS)
        if image is not None:
            inputs[slot] = image
    model_id, loras = resolve_models(body, services.catalog, spec.model_kind) if spec.model_kind else ("", {})
    if spec.model_kind not in ("base", None):
        _check_model_available(operation, body, services)
    if spec.mask_model_kind:
        _check_mask_model(spec.mask_model_kind, body.mask_model_id, services)
    placeholder = {slot: PLACEHOLDER_ASSET for slot in inputs}
    request = body.render_request(placeholder, seed=secrets.randbelow(MAX_SEED + 1))
    if hasattr(request, "control_needs"):  # recorded, so the worker renders with exactly what was checked
        request = request.model_copy(update=resolve_control_models(request.control_needs(), services.catalog, model_id))
    try:
        request.check_input_sizes({slot: (image.info.width, image.info.height) for slot, image in inputs.items()})
    except InputSizeError as exc:
        raise ProblemError("invalid-image", 422, detail=str(exc)) from None
    asset_ids = {slot: image.store(services.assets) for slot, image in inputs.items()}
    request = request.model_copy(update={f"{slot}_asset_id": asset_id for slot, asset_id in asset_ids.items()})
    record = RunRecord(
        run_id=new_run_id(), operation=operation, model_id=model_id, loras=loras,
        request=request.model_dump(mode="json"), **submission.delivery_fields(services, body, time.time()),
        **(applied.record_fields() if applied else {}),
    )
    services.runs.create(record)
    submission.enqueue(services, [record])
    return record


def _check_model_available(operation: str, body: OperationCreate, services: Services) -> None:
    kind = OPERATIONS[operation].model_kind
    if body.model_id or services.catalog.first(kind) is not None:
        return
    if operation == "upscale" and body.mode == "fast":
        return
    hint = " (or mode \"fast\")" if operation == "upscale" else ""
    raise ProblemError("unknown-model", 422, detail=f"this deployment serves no {kind} model{hint}; see GET /v1/models")


def _check_mask_model(kind: str, mask_model_id: str, services: Services) -> None:
    """The text-segmentation model a search edit names (or the first served) exists."""
    if mask_model_id and services.catalog.get(mask_model_id, kind) is None:
        raise ProblemError("unknown-model", 422, detail=f"mask_model_id: no {kind} model {mask_model_id!r}; GET /v1/models lists them")
    if not mask_model_id and services.catalog.first(kind) is None:
        raise ProblemError("unknown-model", 422, detail=f"this deployment serves no {kind} model; see GET /v1/models")


def _make_route(operation: str):
    schema = CREATE_SCHEMAS[operation]

    async def submit(request: Request, response: Response, services: Services = Depends(get_services)) -> RunView:
        fields, files = await read_body(request, services.settings)
        body = validate_body(schema, fields)
        record = await run_in_threadpool(prepare_run, operation, body, files, services)
        response.headers["Location"] = f"/v1/generations/{record.run_id}"
        return run_view(record, services)

    submit.__name__ = f"submit_{operation.replace('-', '_')}"
    submit.__doc__ = (
        f"{OPERATIONS[operation].summary} Takes JSON (input images as base64, data URLs or asset ids) or "
        "multipart/form-data (images as file parts). Answers 202 with the run; poll GET /v1/generations/{run_id}."
    )
    router.add_api_route(
        f"/{operation}", submit, methods=["POST"], status_code=202, response_model=RunView,
        responses=_ERRORS, summary=OPERATIONS[operation].summary, openapi_extra={"requestBody": _request_body_doc(schema)},
    )


for _operation in CREATE_SCHEMAS:
    _make_route(_operation)
