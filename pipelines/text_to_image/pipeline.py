"""Text-to-image on any diffusers Stable Diffusion family pipeline."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import run_diffusion, with_seeds
from .request import TextToImageRequest


class TextToImagePipeline(Pipeline):
    """Renders a `TextToImageRequest` on the base model's text-to-image pipeline.

    Each image gets its own seeded generator (seed, seed + 1, …) so that an image depends only
    on its own seed and the request, never on how many images were asked for with it.
    """

    operation = "text-to-image"

    def render(
        self, request: TextToImageRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress, width=request.width, height=request.height
        )
        return with_seeds([request.exact_crop(image) for image in out], request, self.parameters(request))

