"""Text-to-image on any diffusers Stable Diffusion family pipeline."""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from ..base import GeneratedImage, Job, Pipeline, ProgressCallback, RenderInterrupted, batch_progress
from ..diffusion import run_diffusion, run_diffusion_batch, with_seeds
from .request import TextToImageRequest


class TextToImagePipeline(Pipeline):
    """Renders a `TextToImageRequest` on the base model's text-to-image pipeline.

    Each image gets its own seeded generator (seed, seed + 1, …) so that an image depends only
    on its own seed and the request, never on how many images were asked for with it.
    """

    operation = "text-to-image"

    def __call__(self, jobs: Sequence[Job]) -> list[list[GeneratedImage]]:
        """Jobs with one `batch_key` render in one model call (the worker hands only such)."""
        if len(jobs) == 1:
            return super().__call__(jobs)
        requests = [job.request for job in jobs]
        first = requests[0]
        if any(request.batch_key() != first.batch_key() for request in requests):
            raise ValueError("jobs rendered together must share their batch_key")
        try:
            batches = run_diffusion_batch(self.pipe, requests, first.num_inference_steps, batch_progress(jobs),
                                          width=first.width, height=first.height)
        except RenderInterrupted:  # every job was canceled
            return [[] for _ in jobs]
        return [
            [] if job.stopped else with_seeds([job.request.exact_crop(image) for image in images], job.request,
                                              self.parameters(job.request))
            for job, images in zip(jobs, batches)
        ]

    def render(
        self, request: TextToImageRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress, width=request.width, height=request.height
        )
        return with_seeds([request.exact_crop(image) for image in out], request, self.parameters(request))

