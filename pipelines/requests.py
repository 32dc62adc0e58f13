"""Typed requests the pipelines take. Limits are stated once here and reach the OpenAPI schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PROMPT = 2000
MAX_SEED = 2**32 - 1


class TextToImageRequest(BaseModel):
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
    num_images: int = Field(1, ge=1, le=4, description="Images to render (1–4), each its own seed.")

    def image_seeds(self) -> list[int]:
        """Seed of each image: consecutive from `seed`, wrapping inside the 32-bit range."""
        if self.seed is None:
            raise ValueError("seed must be fixed before rendering")
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.num_images)]
