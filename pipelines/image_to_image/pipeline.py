"""Image-to-image: a prompt and an input image, moved `strength` of the way to a new image."""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from ..base import GeneratedImage, Job, Pipeline, ProgressCallback
from ..diffusion import render_jobs_together, run_diffusion, steps_run, with_seeds
from .request import ImageToImageRequest


class ImageToImagePipeline(Pipeline):
    """Takes a diffusers image-to-image pipeline (built from the base with `from_pipe`)."""

    operation = "image-to-image"

    def __call__(self, jobs: Sequence[Job]) -> list[list[GeneratedImage]]:
        """Jobs with one `render_key` render in one model call: one input image per output image."""
        first = jobs[0].request
        steps = steps_run(first, first.strength)
        if len(jobs) == 1 or steps < 1:
            return super().__call__(jobs)
        keys = [job.request.render_key({"image": job.images["image"].size}) for job in jobs]
        sources = [self.source(job.request, job.images) for job in jobs for _ in range(job.request.num_images)]
        return render_jobs_together(self, jobs, keys, steps, image=sources, strength=first.strength)

    @staticmethod
    def source(request: ImageToImageRequest, images: dict[str, Image.Image]) -> Image.Image:
        """The input image at the output size."""
        source = images["image"].convert("RGB")
        return source.resize(request.output_size(source.size), Image.Resampling.LANCZOS)

    def render(
        self,
        request: ImageToImageRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        source = self.source(request, images)
        parameters = self.parameters(request)
        steps = steps_run(request, request.strength)
        if steps < 1:  # strength this low changes nothing; diffusers would refuse zero steps
            out = [source.copy() for _ in range(request.num_images)]
        else:
            out = run_diffusion(self.pipe, request, steps, on_progress, image=source, strength=request.strength)
        return with_seeds([request.exact_crop(image) for image in out], request, parameters)
