"""GET /v1/models: the base models, LoRAs, upscalers, background removers, text segmenters,
InstructPix2Pix models, ControlNets, IP-Adapters and depth models served."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from storage.models_catalog import ModelKind

from ..services import Services, get_services

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelView(BaseModel):
    id: str = Field(..., description="Pass as model_id, or as a key of loras for a LoRA.")
    name: str
    description: str
    kind: ModelKind
    base: str | list[str] | None = Field(
        None,
        description="LoRAs, ControlNets, IP-Adapters: the id (or ids) of the base model(s) they fit; null: the "
        "default model (for those kinds).",
    )
    control_type: str | None = Field(
        None, description="ControlNets: the map they take (lineart, scribble, canny, depth); pass the id as controlnet_id."
    )
    created_at: datetime


class ModelList(BaseModel):
    models: list[ModelView]


@router.get("", response_model=ModelList, summary="Models this deployment serves (ImagineoAI's list)")
def list_models(services: Services = Depends(get_services)) -> ModelList:
    return ModelList(models=[ModelView(**entry.model_dump(exclude={"source", "options"}),
                                    control_type=entry.options.get("control_type")) for entry in services.catalog.entries.values()])
