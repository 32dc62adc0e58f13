"""ImagineoAI's routes: POST /generate answers at once with the run's id (ImagineoAI is
asynchronous), GET /generations/{run_id} reads the run, GET /models lists what model_id takes.
Each generate is an ordinary renderq text-to-image run under the caller's key."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from core.problems import ProblemError
from storage.redis_ops import run_async

from ...inputs import read_body, validate_body
from ...run_views import run_view_async
from ...schemas import RunView
from ...services import services_of
from ..common import submit
from .fields import PREFIX, GenerateRequest, native_fields

router = APIRouter(prefix=PREFIX.rstrip("/"), tags=["compat: ImagineoAI"])
ERRORS = {status: {"description": f"`{{\"error\": {{\"code\", \"message\"}}}}` ({what})"} for status, what in (
    (400, "invalid_parameter: validation, unknown field, unknown model"), (401, "unauthorized"),
    (403, "insufficient_credits"), (404, "not_found"), (429, "rate_limit_exceeded"))}


class Queued(BaseModel):
    run_id: str = Field(..., examples=["gen_5f0c8e0d2b7a4c1e9d3f6a21"])
    status: str = Field(..., examples=["queued"])
    estimated_time: float | None = Field(None, description="Seconds until the run should be done.")


class Generation(BaseModel):
    run_id: str
    status: str = Field(..., description="renderq's: queued, running, completed, failed, canceled, expired.")
    progress: int = Field(..., ge=0, le=100)
    image_url: str | None = Field(None, description="The first image (signed; kept 24 h).")
    image_urls: list[str] = Field(default_factory=list, description="Every image (with num_images above 1).")
    estimated_time: float | None = None
    error: dict | None = Field(None, description='A failed run: {"code", "message"}.')


class Model(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    kind: str = Field(..., description="lora (rendered on its base model at lora_weight) or base.")


class Models(BaseModel):
    models: list[Model]


@router.post("/generate", response_model=Queued, responses=ERRORS, summary="ImagineoAI: queue an image",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": GenerateRequest.model_json_schema()}}}})
async def generate(request: Request) -> Queued:
    services = services_of(request)
    data, _ = await read_body(request, services.settings)
    fields = validate_body(GenerateRequest, data)
    record = await submit(services, "text-to-image", native_fields(fields))
    view = await run_view_async(record, services)
    return Queued(run_id=record.run_id, status=record.status.value, estimated_time=view.estimated_time)


def generation(view: RunView) -> Generation:
    error = None
    if view.error is not None:
        error = {"code": view.error.type.rsplit("/", 1)[-1].replace("-", "_"), "message": view.error.detail or view.error.title}
    urls = [image.url for image in view.images if image.url and image.role == "image"]
    return Generation(run_id=view.run_id, status=view.status.value, progress=view.progress, image_url=urls[0] if urls else None,
                      image_urls=urls, estimated_time=view.estimated_time, error=error)


@router.get("/generations/{run_id}", response_model=Generation, responses=ERRORS, summary="ImagineoAI: a generation's status")
async def get_generation(request: Request, run_id: str) -> Generation:
    services = services_of(request)
    record = await run_async(services.async_redis, services.runs.get_op(run_id))
    if record is None:
        raise ProblemError("not-found", 404, detail=f"no generation {run_id} (never existed, or expired)")
    return generation(await run_view_async(record, services))


@router.get("/models", response_model=Models, responses=ERRORS, summary="ImagineoAI: models model_id takes")
def list_models(request: Request) -> Models:
    catalog = services_of(request).catalog
    entries = [entry for entry in catalog.entries.values() if entry.kind in ("lora", "base")]
    entries.sort(key=lambda entry: entry.kind != "lora")  # LoRAs, ImagineoAI's models, first
    return Models(models=[Model(id=e.id, name=e.name or e.id, description=e.description, created_at=e.created_at, kind=e.kind)
                          for e in entries])
