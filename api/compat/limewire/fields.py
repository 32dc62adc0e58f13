"""LimeWire's request fields per endpoint, and how each becomes renderq's native body."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...quality import QUALITY_TIERS
from ...schemas import size_for_aspect_ratio
from ..common import native_extras, refused

MAX_PROMPT = 2000
# LimeWire's style enum → renderq's style presets (core/data/style_presets.json).
STYLE_PRESETS = {"PHOTOREALISTIC": "photographic", "SCIFI": "sci-fi", "LANDSCAPE": "landscape"}
# LimeWire's guidance_scale (1–100, default 40) → renderq's (default 7.5): one scale, the defaults matched.
GUIDANCE_FACTOR = 7.5 / 40
# renderq's field → LimeWire's, for the errors.
THEIR_NAMES = {"num_images": "samples", "style_preset": "style", "width": "aspect_ratio", "height": "aspect_ratio"}


class LimeWireFields(BaseModel):
    """What the image endpoints share. Other top-level fields are renderq's own knobs of the
    operation (seed, num_inference_steps, webhook_url, …)."""

    model_config = ConfigDict(extra="allow")

    image_asset_id: str | None = Field(None, description="An asset id from /upload (or an image a run returned).")
    image: str | None = Field(None, description="Multipart: the image file part (JSON: base64 or a data URL).")


class Prompted(LimeWireFields):
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT)
    samples: int = Field(1, ge=1, le=4, description="Images to render (renderq's num_images).")


class GenerateFields(Prompted):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    quality: Literal["LOW", "MID", "HIGH"] = Field("MID", description="renderq's tiers: steps and the image's area.")
    guidance_scale: int = Field(40, ge=1, le=100, description="1–100; renderq's guidance_scale × 40 / 7.5.")
    aspect_ratio: Literal["1:1", "13:19", "19:13", "2:3", "3:2"] = Field("1:1", description="At the quality tier's area.")
    style: Literal["PHOTOREALISTIC", "SCIFI", "LANDSCAPE"] | None = Field(None, description="A renderq style preset.")


class UpscaleFields(LimeWireFields):
    upscale_factor: Literal[2, 3, 4]


class OutpaintFields(Prompted):
    prompt: str = Field("", max_length=MAX_PROMPT)
    direction: Literal["UP", "DOWN", "LEFT", "RIGHT", "ALL"]
    crop_side: Literal["LEFT", "RIGHT", "TOP", "BOTTOM"]


class InpaintFields(Prompted):
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    mask_asset_id: str | None = None
    mask: str | None = Field(None, description="Multipart: the mask file part.")
    mask_color_rgba: list[int] = Field([0, 0, 0, 0], min_length=4, max_length=4,
                                       description="Pixels of this colour, in the mask (or without one, the image), are repainted.")
    mask_color_threshold: int = Field(0, ge=0, le=100)


def _slots(fields: LimeWireFields, names: tuple[str, ...]) -> dict:
    return {name: getattr(fields, name) for name in names if getattr(fields, name, None) is not None}


def _prompted(fields: Prompted, operation: str, own: dict) -> dict:
    out = own | {"num_images": fields.samples} | _slots(fields, ("image", "image_asset_id", "negative_prompt"))
    return out | native_extras(fields.model_extra or {}, operation, blocked=set(out) | {"style_preset", "quality"})


def generate_body(fields: GenerateFields, has_image: bool) -> tuple[str, dict]:
    """(operation, native fields): text-to-image, or image-to-image when an image is given."""
    operation = "image-to-image" if has_image else "text-to-image"
    own: dict = {"prompt": fields.prompt, "quality": fields.quality, "guidance_scale": round(fields.guidance_scale * GUIDANCE_FACTOR, 4)}
    if fields.style is not None:
        own["style_preset"] = STYLE_PRESETS[fields.style]
    extra = fields.model_extra or {}
    if {"width", "height"} & set(extra):  # renderq's explicit size (tests shrink with it)
        if "aspect_ratio" in fields.model_fields_set:
            raise refused("aspect_ratio", "give aspect_ratio or renderq's width/height, not both")
    else:
        own["width"], own["height"] = size_for_aspect_ratio(fields.aspect_ratio, QUALITY_TIERS[fields.quality][1])
    return operation, _prompted(fields, operation, own)


def upscale_body(fields: UpscaleFields) -> dict:
    own = {"upscale_factor": fields.upscale_factor} | _slots(fields, ("image", "image_asset_id"))
    return own | native_extras(fields.model_extra or {}, "upscale", blocked=set(own))


def outpaint_body(fields: OutpaintFields) -> dict:
    return _prompted(fields, "outpaint", {"prompt": fields.prompt, "direction": fields.direction, "crop_side": fields.crop_side})


def inpaint_body(fields: InpaintFields) -> dict:
    own = {"prompt": fields.prompt, "mask_color_rgba": fields.mask_color_rgba, "mask_color_threshold": fields.mask_color_threshold}
    return _prompted(fields, "inpaint", own | _slots(fields, ("mask", "mask_asset_id")))
