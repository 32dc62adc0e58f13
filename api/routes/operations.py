"""POST /v1/{operation}: the image operations, one route each, all answering the same run
resource as /v1/generations (poll it at GET /v1/generations/{run_id})."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from .. import submission
from ..bodies import BODIES, OperationCreate
from ..inputs import file_part_names, read_body, validate_body
from ..problems import PROBLEM_RESPONSES
from ..run_views import run_view
from ..schemas import RunView
from ..services import Services, get_services

router = APIRouter(prefix="/v1", tags=["operations"])

_ERRORS = {
    **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 402, 422, 503)},
    413: {**PROBLEM_RESPONSES[422], "description": "an input image or the body is over its size or pixel limit"},
    415: {**PROBLEM_RESPONSES[422], "description": "not JSON/multipart, or an image that is not PNG, JPEG or WebP"},
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


def _make_route(operation: str):
    schema = BODIES[operation]
    summary = schema.OPERATION.summary

    async def submit(request: Request, response: Response, services: Services = Depends(get_services)) -> RunView:
        fields, files = await read_body(request, services.settings)
        body = validate_body(schema, fields)
        record = await run_in_threadpool(submission.submit, services, body, files)
        response.headers["Location"] = f"/v1/generations/{record.run_id}"
        return run_view(record, services, fresh_estimate=True)

    submit.__name__ = f"submit_{operation.replace('-', '_')}"
    submit.__doc__ = (
        f"{summary} Takes JSON (input images as base64, data URLs or asset ids) or "
        "multipart/form-data (images as file parts). Answers 202 with the run; poll GET /v1/generations/{run_id}."
    )
    router.add_api_route(
        f"/{operation}", submit, methods=["POST"], status_code=202, response_model=RunView,
        responses=_ERRORS, summary=summary, openapi_extra={"requestBody": _request_body_doc(schema)},
    )


for _operation in BODIES:
    if _operation != "text-to-image":  # POST /v1/generations (routes/generations.py)
        _make_route(_operation)
