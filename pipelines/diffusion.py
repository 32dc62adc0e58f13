"""Running a diffusers pipeline for a request: per-image seeds, progress, interruption."""

from __future__ import annotations

import torch
from PIL import Image

from .base import GeneratedImage, ProgressCallback, RenderInterrupted
from .request_parts import DiffusionRequest


def run_diffusion(
    pipe, request: DiffusionRequest, total_steps: int, on_progress: ProgressCallback | None, **inputs
) -> list[Image.Image]:
    """Call `pipe` with the request's shared fields plus `inputs` (image, mask_image, sizes, …).

    One seeded generator per image, so an image depends only on its own seed. `total_steps`
    is what the pipeline will really run (img2img runs steps × strength)."""
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in request.image_seeds()]
    # Most diffusers pipelines stop at their `interrupt` flag; one without it (InstructPix2Pix)
    # is stopped by raising from its step callback.
    has_flag = isinstance(getattr(type(pipe), "interrupt", None), property)

    def step_end(pipe, step: int, timestep, kwargs):
        if on_progress is not None and on_progress(step + 1, total_steps) is False:
            if not has_flag:
                raise RenderInterrupted()
            pipe._interrupt = True
        return kwargs

    with torch.inference_mode():
        result = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            num_images_per_prompt=request.num_images,
            generator=generators,
            callback_on_step_end=step_end,
            **inputs,
        )
    if getattr(pipe, "_interrupt", False):
        pipe._interrupt = False
        raise RenderInterrupted()
    return result.images


def steps_run(request: DiffusionRequest, strength: float) -> int:
    """Denoising steps an image-conditioned diffusers pipeline runs for this strength."""
    return min(int(request.num_inference_steps * strength), request.num_inference_steps)


def with_seeds(images: list[Image.Image], request: DiffusionRequest, parameters: dict) -> list[GeneratedImage]:
    return [
        GeneratedImage(image=image, seed=seed, parameters=parameters | {"seed": seed})
        for image, seed in zip(images, request.image_seeds())
    ]
