"""What general-edit takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..request_parts import MAX_PROMPT, ImageInput, DiffusionRequest
from ..operation import EXAMPLE_ASSET, IMAGE, Operation, model_id_field


MAX_IMAGE_GUIDANCE = 10.0

class GeneralEditRequest(ImageInput, DiffusionRequest):
    """An edit given as an instruction, run by an InstructPix2Pix model."""

    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="The edit as an instruction (e.g. \"make it winter\")."
    )
    image_guidance_scale: float = Field(
        1.5, ge=0, le=MAX_IMAGE_GUIDANCE,
        description="Livepeer: how closely the output keeps to the input image (0–10, default 1.5; higher keeps "
        "more). Below 1 both guidances are off (diffusers' rule), as with guidance_scale ≤ 1.",
    )


class GeneralEditChoices(BaseModel):
    model_id: str = model_id_field("An instruct-pix2pix model from GET /v1/models; the first listed when empty.")


OPERATION = Operation(
    name="general-edit",
    summary="Edit an image by an instruction (\"make it winter\") with an InstructPix2Pix model.",
    request=GeneralEditRequest,
    pipeline="GeneralEditPipeline",
    model_kind="instruct-pix2pix",
    slots=(IMAGE,),
    quality=True,
    caller_fields=GeneralEditChoices,
    examples=({
        "image_asset_id": EXAMPLE_ASSET, "prompt": "make it winter",
        "image_guidance_scale": 1.5, "guidance_scale": 7.5, "seed": 7,
    },),
)
