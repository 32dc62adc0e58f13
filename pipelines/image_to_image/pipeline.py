"""Image-to-image: a prompt and an input image, moved `strength` of the way to a new image."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import run_diffusion, steps_run, with_seeds
from .request import ImageToImageRequest


class ImageToImagePipeline(Pipeline):
    """Takes a diffusers image-to-image pipeline (built from the base with `from_pipe`)."""

    operation = "image-to-image"


    def render(
        self,
        request: ImageToImageRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        source = images["image"].convert("RGB")
        width, height = request.output_size(source.size)
        source = source.resize((width, height), Image.Resampling.LANCZOS)
        parameters = self.parameters(request)
        steps = steps_run(request, request.strength)
        if steps < 1:  # strength this low changes nothing; diffusers would refuse zero steps
            out = [source.copy() for _ in range(request.num_images)]
        else:
            out = run_diffusion(self.pipe, request, steps, on_progress, image=source, strength=request.strength)
        return with_seeds([request.exact_crop(image) for image in out], request, parameters)
