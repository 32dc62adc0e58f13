"""What variations takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from ..image_to_image.request import ImageToImageRequest
from ..request_parts import MAX_PROMPT
from ..operation import ALL_TEMPLATE_FIELDS, IMAGE, PNG_1PX, Operation


class VariationsRequest(ImageToImageRequest):
    """Variations of an image: image-to-image with an optional prompt, several seeds."""

    prompt: str = Field("", max_length=MAX_PROMPT, description="Optional steer for the variations.")
    strength: float = Field(0.6, ge=0, le=1, description="How far each variation may move from the input (0–1).")
    num_images: int = Field(
        4, ge=1, le=4,
        validation_alias=AliasChoices("num_images", "samples", "num_images_per_prompt"),
        description="Variations to render (1–4), each its own seed; aliases `samples`, `num_images_per_prompt`.",
    )


OPERATION = Operation(
    name="variations",
    summary="Render 1–4 variations of an input image, each with its own seed.",
    request=VariationsRequest,
    pipeline="VariationsPipeline",
    model_kind="base",
    diffusers_task="image-to-image",
    slots=(IMAGE,),
    templates=ALL_TEMPLATE_FIELDS,
    quality=True,
    examples=({"image": PNG_1PX, "num_images": 4, "strength": 0.6, "seed": 7},),
)
