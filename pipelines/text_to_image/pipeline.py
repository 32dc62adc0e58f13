"""Text-to-image on any diffusers Stable Diffusion family pipeline."""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from ..base import GeneratedImage, Job, Pipeline, ProgressCallback
from ..diffusion import render_jobs_together, run_diffusion, with_seeds
from .request import TextToImageRequest


class TextToImagePipeline(Pipeline):
    """Renders a `TextToImageRequest` on the base model's text-to-image pipeline.

    Each image gets its own seeded generator (seed, seed + 1, …) so that an image depends only
    on its own seed and the request, never on how many images were asked for with it.
    """

    operation = "text-to-image"

    def __call__(self, jobs: Sequence[Job]) -> list[list[GeneratedImage]]:
        """Jobs with one `render_key` render in one model call (the worker hands only such)."""
        if len(jobs) == 1:
            return super().__call__(jobs)
        first = jobs[0].request
        return render_jobs_together(self, jobs, [job.request.render_key() for job in jobs], first.num_inference_steps,
                                    width=first.width, height=first.height)

    def render(
        self, request: TextToImageRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress, width=request.width, height=request.height
        )
        return with_seeds([request.exact_crop(image) for image in out], request, self.parameters(request))

