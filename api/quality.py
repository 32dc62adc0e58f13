"""Quality tiers (LimeWire's LOW / MID / HIGH): defaults for steps and, for text-to-image, size."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

Quality = Literal["LOW", "MID", "HIGH"]

# tier → (denoising steps, text-to-image pixel area). Explicit fields always win.
QUALITY_TIERS: dict[str, tuple[int, int]] = {
    "LOW": (15, 384 * 384),
    "MID": (25, 512 * 512),
    "HIGH": (40, 768 * 768),
}


class QualityField(BaseModel):
    quality: Quality | None = Field(
        None,
        description="LOW: 15 steps (text-to-image at about 384×384), MID: 25 steps (512×512), "
        "HIGH: 40 steps (768×768). num_inference_steps, width and height given explicitly win.",
    )

    @model_validator(mode="after")
    def _tier_steps(self):
        if self.quality is not None and "num_inference_steps" not in self.model_fields_set:
            self.num_inference_steps = QUALITY_TIERS[self.quality][0]
        return self
