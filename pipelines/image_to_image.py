"""Image-to-image: a prompt and an input image, moved `strength` of the way to a new image."""

from __future__ import annotations

from PIL import Image

from .base import GeneratedImage, ProgressCallback
from .diffusion import run_diffusion, steps_run, with_seeds
from .requests import ImageToImageRequest


class ImageToImagePipeline:
    """Takes a diffusers image-to-image pipeline (built from the base with `from_pipe`)."""

    name = "image-to-image"

    def __init__(self, pipe, model: str = "") -> None:
        self.pipe, self.model = pipe, model

    def __call__(
        self,
        request: ImageToImageRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        source = images["image"].convert("RGB")
        width, height = request.output_size(source.size)
        source = source.resize((width, height), Image.Resampling.LANCZOS)
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model, "operation": self.name}
        steps = steps_run(request, request.strength)
        if steps < 1:  # strength this low changes nothing; diffusers would refuse zero steps
            out = [source.copy() for _ in range(request.num_images)]
        else:
            out = run_diffusion(self.pipe, request, steps, on_progress, image=source, strength=request.strength)
        return with_seeds([request.exact_crop(image) for image in out], request, parameters)
