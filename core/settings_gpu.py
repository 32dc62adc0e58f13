"""The placement and tuning fields of the settings object (core/settings.py `Settings`
inherits them): how a worker places and tunes its diffusion models (pipelines/device.py,
docs/deployment.md#on-gpus). Apart only to keep each module short; read through `Settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


class PlacementSettings(BaseSettings):
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto",
        description="Weights and arithmetic of the models: `auto` is float16 on CUDA, float32 on CPU; bfloat16 needs "
        "an Ampere or newer GPU.",
    )
    channels_last: bool = Field(
        True, description="On CUDA, UNet, VAE and ControlNet weights in the channels_last memory format; not on CPU."
    )
    vae_tiling: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Decode and encode in overlapping VAE tiles, bounding the VAE's memory: `auto` tiles images above "
        "RENDERQ_VAE_TILING_PIXELS, `on` every image larger than one tile (the model's native size).",
    )
    vae_tiling_pixels: int = Field(
        1024 * 1024, gt=0, description="With RENDERQ_VAE_TILING=auto, images above this many pixels are tiled."
    )
    vae_slicing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Decode the images of one model call one at a time, so the VAE's memory does not grow with the "
        "batch: `auto` is on on CUDA, off on CPU.",
    )
    torch_compile: bool = Field(
        False,
        description="On CUDA, compile each loaded model's UNet with torch.compile and warm RENDERQ_COMPILE_SHAPES at "
        "load (the worker's start); ignored on CPU.",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile's mode when RENDERQ_TORCH_COMPILE is on."
    )
    compile_shapes: str = Field(
        "512x512",
        description="WIDTHxHEIGHT sizes, comma-separated, each rendered once for 2 steps when a model loads with "
        "RENDERQ_TORCH_COMPILE on, so jobs do not wait for compilation; two sizes differing in both sides make the "
        "compiled graph serve every size and batch (docs/deployment.md#on-gpus).",
    )

    @field_validator("compile_shapes")
    @classmethod
    def _sizes_list(cls, value: str) -> str:
        # "512x512, 768x768" → "512x512,768x768"; each side a positive multiple of 8 (latents are 1/8).
        sizes = [size.strip().lower() for size in value.split(",") if size.strip()]
        for size in sizes:
            width, _, height = size.partition("x")
            if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0
                    and int(width) % 8 == 0 and int(height) % 8 == 0):
                raise ValueError(f"RENDERQ_COMPILE_SHAPES: {size!r} is not WIDTHxHEIGHT in multiples of 8")
        return ",".join(sizes)
