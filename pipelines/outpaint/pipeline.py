"""Outpainting: grow the canvas (LimeWire direction/crop_side or ALwrity expand_*), mask the
new area, inpaint it. The original pixels come through unchanged."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import with_seeds
from ..inpaint.pipeline import inpaint
from ..masks import pad
from .request import OutpaintRequest


class OutpaintPipeline(Pipeline):
    operation = "outpaint"


    def render(
        self,
        request: OutpaintRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        image = images["image"]
        _, box = request.canvas(image.size)
        canvas, mask = pad(image, box, request.padding(image.size))
        out = inpaint(self.pipe, request, canvas, mask, request.strength, on_progress)
        parameters = self.parameters(request)
        return with_seeds(out, request, parameters)
