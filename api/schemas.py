"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.request_parts import MAX_SIDE, MIN_SIDE
from core.problems import Problem
from storage.records import Priority, RunStatus

from .delivery_options import WebhookView
from .quality import QUALITY_TIERS

# Ratio presets; the image keeps about the area of `BASE_AREA` (512²), sides rounded to 8.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3),
    "16:9": (16, 9), "9:16": (9, 16), "21:9": (21, 9), "9:21": (9, 21), "13:19": (13, 19), "19:13": (19, 13),
}
AspectRatio = Literal["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9", "9:21", "13:19", "19:13"]
BASE_AREA = 512 * 512


def size_for_aspect_ratio(ratio: str, area: int = BASE_AREA) -> tuple[int, int]:
    w, h = ASPECT_RATIOS[ratio]
    width = math.sqrt(area * w / h)
    height = width * h / w

    def side(x: float) -> int:
        return max(MIN_SIDE, min(MAX_SIDE, int(round(x / 8)) * 8))

    return side(width), side(height)


class AspectRatioSize(BaseModel):
    """`aspect_ratio` as a way to give width and height (text-to-image, style)."""

    aspect_ratio: AspectRatio | None = Field(
        None,
        description="Instead of width/height: a preset ratio at about 512×512 pixels of area "
        "(1:1 512×512, 4:3 592×440, 16:9 680×384, 9:16 384×680, 21:9 784×336, …).",
    )

    @model_validator(mode="after")
    def _resolve_size(self):
        quality = getattr(self, "quality", None)
        area = QUALITY_TIERS[quality][1] if quality else BASE_AREA
        if self.aspect_ratio is not None:
            if {"width", "height"} & self.model_fields_set:
                raise ValueError("give either aspect_ratio or width/height, not both")
            self.width, self.height = size_for_aspect_ratio(self.aspect_ratio, area)
        elif quality is not None and not {"width", "height"} & self.model_fields_set:
            self.width, self.height = size_for_aspect_ratio("1:1", area)
        return self


class ImageView(BaseModel):
    url: str | None = Field(None, description="Temporary URL; re-signed on every read, never valid past expires_at.")
    url_expires_at: datetime | None = None
    thumbnail_url: str | None = Field(
        None, description="Temporary URL of a small WebP of the image (at most 256 px on its long side, for galleries); "
        "signed like `url`, expiring with it.",
    )
    width: int
    height: int
    seed: int
    content_type: str = "image/png"
    bytes: int = 0
    asset_id: str | None = Field(None, description="The image as an asset: pass it as image_asset_id to the next request.")
    role: Literal["image", "mask", "control"] = Field(
        "image", description="`mask`: the black-and-white mask (white = repainted) a search-replace/search-recolor run "
        "returns last when asked with return_mask. `control`: the control map (line art, edges, depth) a sketch/"
        "structure/style-transfer run returns last when asked with return_control_map. Their seed is 0 and they are "
        "not charged. Every other output is an `image`.",
    )
    object_uri: str | None = Field(
        None, examples=["s3://acme-renders/renderq/campaign/gen_5f0c8e0d2b7a4c1e9d3f6a21/0.png"],
        description="Where the image was written when the request had an `output` destination (then no url, no asset_id).",
    )
    object_key: str | None = Field(None, description="The object's key in object_bucket (with `output`).")
    object_bucket: str | None = Field(None, description="The destination's bucket (with `output`).")
    platform: str | None = Field(None, description="social-formats: the platform this image is for (instagram, x, …).")
    format_id: str | None = Field(None, description="social-formats: the format's slug id (GET /v1/platforms/{platform}/formats).")
    format_name: str | None = Field(None, description="social-formats: the format's name (ALwrity's `format`).")


class RunView(BaseModel):
    """The run resource: the same envelope whatever the operation."""

    run_id: str = Field(..., examples=["gen_5f0c8e0d2b7a4c1e9d3f6a21"])
    status: RunStatus
    operation: str
    model_id: str
    progress: int = Field(..., ge=0, le=100, description="Percent of denoising steps done.")
    estimated_time: float | None = Field(None, description="Seconds until the run should be done.")
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime = Field(..., description="Images, URLs and this record are gone after this.")
    attempt: int = Field(1, description="Delivery number; above 1 when a worker died and the run was re-run.")
    request: dict[str, Any] = Field(..., description="The request as it will be (or was) rendered.")
    image_url: str | None = Field(None, description="URL of the first image (ImagineoAI compatible).")
    preview_url: str | None = Field(
        None, description="While running, with live previews on: a signed URL of the latest preview (a JPEG of at most "
        "256 px, the first image as it forms), valid 60 s; null otherwise (gone once the run ends).",
    )
    preview_step: int | None = Field(None, description="The denoising step the preview at preview_url shows.")
    images: list[ImageView] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    error: Problem | None = None
    priority: Priority = Priority.normal
    queue_position: int | None = Field(None, description="Runs a worker takes before this one; None unless queued.")
    batch_id: str | None = None
    start_deadline: datetime | None = Field(None, description="Still queued at this time, the run ends expired.")
    cancel_requested: bool = False
    retry_of: str | None = Field(None, description="The run this one re-runs (POST …/retry).")
    webhook: WebhookView | None = None
    output: str | None = Field(None, description="The request's storage://{destination}/{folder}/, if it had one.")
    template_id: str | None = Field(None, description="The template applied (its size, quality tier and style preset).")
    style_preset: str | None = Field(None, description="The style preset applied; request.prompt is the final prompt.")
    input_prompt: str | None = Field(None, description="The prompt as sent, before a style preset wrapped it.")
    credits_estimated: float | None = Field(
        None, description="Credits this run was estimated at, held from the tenant's balance until it ends (0.001 precision)."
    )
    credits_used: float | None = Field(
        None, description="Credits charged, once the run has ended: completed, the price of what was rendered (at most the "
        "estimate); canceled, the estimate × the share of steps that ran; failed or expired, 0.",
    )
    credits_remaining: float | None = Field(
        None, description="The tenant's available credits right after this run was charged; null for an unmetered tenant.",
    )
