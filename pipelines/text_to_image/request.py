"""What text-to-image takes: its typed request and its operation declaration."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..request_parts import MIN_SIDE, MAX_SIDE, MAX_PROMPT, MAX_SEED, ExactSize, Seeded
from ..operation import ALL_TEMPLATE_FIELDS, Operation

# The catalog kind that cuts out `background: transparent` images (remove-background's models).
BACKGROUND_REMOVER = "background-removal"


class TextToImageRequest(ExactSize, Seeded):
    """What a text-to-image render needs, independent of which model runs it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What to draw (1–2000 characters)."
    )
    negative_prompt: str = Field(
        "", max_length=MAX_PROMPT, description="What to steer away from (≤ 2000 characters)."
    )
    width: int = Field(
        512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048."
    )
    height: int = Field(
        512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048."
    )
    num_inference_steps: int = Field(25, ge=1, le=150, description="Denoising steps (1–150).")
    guidance_scale: float = Field(
        7.5, ge=0, le=30, description="Classifier-free guidance (0–30); ≤ 1 disables it."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Seed of the first image; image i uses seed + i. Chosen at random when omitted.",
    )
    num_images: int = Field(
        1,
        ge=1,
        le=4,
        # LimeWire calls it `samples`, Livepeer `num_images_per_prompt`.
        validation_alias=AliasChoices("num_images", "samples", "num_images_per_prompt"),
        description="Images to render (1–4), each its own seed; aliases `samples`, `num_images_per_prompt`.",
    )

    background: Literal["opaque", "transparent"] = Field(
        "opaque", description="transparent: the worker cuts each image's subject out with the deployment's "
        "background-removal model after rendering (an RGBA PNG); refused (422) where none is served.",
    )

    def render_key(self, input_sizes: dict | None = None) -> tuple:
        # The model call's shared settings; prompts, negative prompts, seeds, image counts and
        # the exact crop (applied after) may differ.
        return self.width, self.height, self.num_inference_steps, self.guidance_scale


class GenerationChoices(BaseModel):
    """A text-to-image request as callers send it."""

    model_id: str = Field(
        "", max_length=200, description="Model to render with; the deployment's default when empty."
    )


OPERATION = Operation(
    name="text-to-image",
    summary="Render images from a prompt.",
    request=TextToImageRequest,
    pipeline="TextToImagePipeline",
    model_kind="base",
    diffusers_task="text-to-image",
    templates=ALL_TEMPLATE_FIELDS,
    quality=True,
    aspect_ratio=True,
    caller_fields=GenerationChoices,
    body_name="GenerationCreate",
    examples=(
        {
            "prompt": "A blue ceramic coffee mug on a wooden table",
            "negative_prompt": "blurry, low quality",
            "width": 512,
            "height": 512,
            "num_inference_steps": 25,
            "guidance_scale": 7.5,
            "seed": 7,
            "num_images": 1,
        },
        {"prompt": "A lighthouse at dusk, oil painting", "aspect_ratio": "16:9"},
        {"prompt": "Modern minimalist workspace with laptop", "template_id": "linkedin_post"},
    ),
)
