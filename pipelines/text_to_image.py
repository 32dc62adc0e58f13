"""Text-to-image on any diffusers Stable Diffusion family pipeline."""

from __future__ import annotations

from .base import GeneratedImage, ProgressCallback
from .device import Placement, choose_placement
from .diffusion import run_diffusion, with_seeds
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
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress, width=request.width, height=request.height
        )
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model}
        return with_seeds([request.exact_crop(image) for image in out], request, parameters)
