"""OpenAI's request fields, and how each becomes a field of renderq's operation body."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.problems import ProblemError

# quality: OpenAI's words (gpt-image's and dall-e-3's) → renderq's tiers; auto leaves the default.
QUALITY_TIERS = {"low": "LOW", "medium": "MID", "standard": "MID", "high": "HIGH", "hd": "HIGH", "auto": None}
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# Fields OpenAI's SDKs may send that renderq takes and ignores (nothing of ours to map them to).
IGNORED = frozenset({"user", "style", "moderation", "safety_identifier", "input_fidelity"})


def openai_error(message: str, status: int = 400, param: str | None = None, code: str | None = None) -> ProblemError:
    """A refusal worded for OpenAI's envelope (api/openai/errors.py turns it into one)."""
    return ProblemError("validation-error", status, detail=message, openai_param=param, openai_code=code)


class ImagesFields(BaseModel):
    """What the three routes share. Other top-level fields are renderq's own knobs (seed,
    negative_prompt, num_inference_steps, guidance_scale, loras, …: what the SDK's extra_body
    sends), checked by the renderq body they join."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model id from GET /v1/models; the deployment's default when omitted.")
    n: int | None = Field(None, ge=1, le=10, description="Images to render (renderq renders at most 4 per run).")
    size: str | None = Field(None, description='"WIDTHxHEIGHT" (multiples of 8, 64–2048) or "auto".')
    response_format: Literal["url", "b64_json"] | None = Field(None, description="url (default): signed URLs kept 24 h.")
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(None, ge=0, le=100, description="jpeg/webp: Pillow's quality, 0–100.")
    background: Literal["transparent", "opaque", "auto"] | None = Field(
        None, description="transparent (generations only, png or webp): each image cut out by the deployment's "
        "background-removal model after rendering; refused where none is served. opaque and auto: as rendered.",
    )
    quality: Literal["low", "medium", "high", "standard", "hd", "auto"] | None = None
    stream: bool | None = Field(
        None, description="/v1/images/generations: Server-Sent Events, the run's live previews as partial images, "
        "then the images (api/openai/streaming.py). Refused on edits and variations.",
    )
    partial_images: int | None = Field(None, ge=0, le=3, description="With stream: at most this many partial images (0–3).")
    user: str | None = None

    STREAMS: ClassVar[bool] = False  # whether the route answers `stream: true`


class GenerationFields(ImagesFields):
    STREAMS: ClassVar[bool] = True
    prompt: str = Field(..., description="What to draw.")
    style: Literal["vivid", "natural"] | None = None


class EditFields(ImagesFields):
    prompt: str = Field(..., description="What to paint where the mask is transparent.")


class VariationFields(ImagesFields):
    pass


def parse_size(size: str | None) -> dict[str, int]:
    if size is None or size == "auto":
        return {}
    match = _SIZE.match(size.strip())
    if match is None:
        raise openai_error(f"Invalid size {size!r}: give 'WIDTHxHEIGHT' (such as '512x512') or 'auto'.", param="size",
                           code="invalid_value")
    return {"width": int(match.group(1)), "height": int(match.group(2))}


def refuse_unsupported(fields: ImagesFields) -> None:
    """What renderq cannot do in one run, refused rather than silently ignored."""
    if fields.stream and not fields.STREAMS:
        raise openai_error("stream=true is supported on /v1/images/generations only; send stream=false and get the "
                           "images when the run ends.", param="stream", code="unsupported_value")
    if fields.background == "transparent" and not isinstance(fields, GenerationFields):
        raise openai_error("background='transparent' is supported on /v1/images/generations only; run "
                           "POST /v1/remove-background on the result.", param="background", code="unsupported_value")
    if fields.background == "transparent" and fields.output_format == "jpeg":
        raise openai_error("background='transparent' needs output_format 'png' or 'webp': JPEG has no transparency.",
                           param="output_format", code="invalid_value")


def renderq_fields(fields: ImagesFields, target: type[BaseModel], sized: bool = True) -> dict:
    """The renderq body's fields for OpenAI's `fields`: model, n, quality, size, the prompt, and
    every extra field the renderq body takes (an unknown one is refused, as OpenAI does)."""
    refuse_unsupported(fields)
    out: dict = {}
    if fields.model:
        out["model_id"] = fields.model
    if fields.n is not None:
        out["num_images"] = fields.n
    tier = QUALITY_TIERS.get(fields.quality) if fields.quality else None
    if tier is not None:
        out["quality"] = tier
    if sized:
        out |= parse_size(fields.size)
    if getattr(fields, "prompt", None) is not None:
        out["prompt"] = fields.prompt
    if fields.background == "transparent":  # cut out by the worker after rendering (text-to-image's own field)
        out["background"] = "transparent"
    blocked = {"model_id", "num_images", "quality", "prompt", "image", "mask", "image_asset_id", "mask_asset_id", "background"}
    for name, value in (fields.model_extra or {}).items():
        if name in IGNORED:
            continue
        if name in blocked or name not in target.model_fields:
            raise openai_error(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        out[name] = value
    return out
