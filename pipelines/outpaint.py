"""Outpainting: grow the canvas (LimeWire direction/crop_side or ALwrity expand_*), mask the
new area, inpaint it. The original pixels come through unchanged."""

from __future__ import annotations

from PIL import Image

from .base import GeneratedImage, ProgressCallback
from .diffusion import with_seeds
from .inpaint import inpaint
from .masks import pad
from .requests import OutpaintRequest


class OutpaintPipeline:
    name = "outpaint"

    def __init__(self, pipe, model: str = "") -> None:
        self.pipe, self.model = pipe, model

    def __call__(
        self,
        request: OutpaintRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        image = images["image"]
        _, box = request.canvas(image.size)
        canvas, mask = pad(image, box, request.padding(image.size))
        out = inpaint(self.pipe, request, canvas, mask, request.strength, on_progress)
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model, "operation": self.name}
        return with_seeds(out, request, parameters)
