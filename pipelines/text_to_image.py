"""Text-to-image on any diffusers Stable Diffusion family pipeline."""

from __future__ import annotations

import torch

from .base import GeneratedImage, ProgressCallback, RenderInterrupted
from .device import Placement, choose_placement
from .loading import load_text_to_image
from .requests import TextToImageRequest


class TextToImagePipeline:
    """Renders a `TextToImageRequest`; loaded once and reused for every job.

    Each image gets its own seeded generator (seed, seed + 1, …) so that an image depends
    only on its own seed and the request, never on how many images were asked for with it.
    """

    name = "text-to-image"

    def __init__(self, model: str, placement: Placement | None = None, pipe=None) -> None:
        self.model = model
        self.placement = placement or choose_placement()
        self.pipe = pipe if pipe is not None else load_text_to_image(model, self.placement)

    def __call__(
        self, request: TextToImageRequest, on_progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        seeds = request.image_seeds()
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        total = request.num_inference_steps

        def step_end(pipe, step: int, timestep, kwargs):
            if on_progress is not None and on_progress(step + 1, total) is False:
                pipe._interrupt = True
            return kwargs

        with torch.inference_mode():
            result = self.pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                width=request.width,
                height=request.height,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                num_images_per_prompt=request.num_images,
                generator=generators,
                callback_on_step_end=step_end,
            )
        if getattr(self.pipe, "_interrupt", False):
            self.pipe._interrupt = False
            raise RenderInterrupted()
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model}
        return [
            GeneratedImage(image=request.exact_crop(image), seed=seed, parameters=parameters | {"seed": seed})
            for image, seed in zip(result.images, seeds)
        ]
