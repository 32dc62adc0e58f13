"""Claid's request, and how each of its fields becomes a field of renderq's text-to-image body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...bodies import BODIES
from ..common import refused

PREFIX = "/compat/claid/"
# renderq's body field → Claid's, for error_details.
NAMES = {"prompt": "input", "num_images": "options.number_of_images", "guidance_scale": "options.guidance_scale",
         "output": "output"}
# Native fields Claid's options may not set: they are Claid's own fields under other names.
_BLOCKED = {"prompt", "num_images", "output"}


def claid_name(field: str) -> str:
    """Claid's name for a renderq body field (`options.<name>` for renderq's own knobs)."""
    head = field.split(".")[0]
    return NAMES.get(field) or (f"options.{field}" if head in BODIES["text-to-image"].model_fields else field)


class ClaidOptions(BaseModel):
    """Claid's generation options. renderq's own text-to-image fields (width, height, seed,
    negative_prompt, num_inference_steps, model_id, webhook_url, …) may be given here too."""

    model_config = ConfigDict(extra="allow")

    number_of_images: int | None = Field(None, description="Images to generate (renderq: 1–4; default 1).")
    guidance_scale: float | None = Field(None, description="Classifier-free guidance (0–30).")


class ClaidGenerate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., min_length=3, max_length=1024, description="The text prompt, 3–1024 characters.")
    options: ClaidOptions = Field(default_factory=ClaidOptions)
    output: str | None = Field(
        None, description="storage://{destination}/{folder}/: a destination registered with POST /v1/destinations; the "
        "images are written there and tmp_url is empty. Without it, tmp_url is a signed URL kept one day.",
    )


def native_fields(request: ClaidGenerate, body_fields: dict) -> dict:
    """The text-to-image body's fields for Claid's request; an option renderq does not take is
    refused by name. `body_fields`: the native body's field names."""
    out: dict = {"prompt": request.input}
    options = request.options
    if options.number_of_images is not None:
        out["num_images"] = options.number_of_images
    if options.guidance_scale is not None:
        out["guidance_scale"] = options.guidance_scale
    if request.output is not None:
        out["output"] = request.output
    for name, value in (options.model_extra or {}).items():
        if name in _BLOCKED or name not in body_fields:
            raise refused(f"options.{name}", "renderq's image generation does not take this option")
        out[name] = value
    return out
