"""Sketch: a drawing or line art guides the image (a line-art or scribble ControlNet)."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..control import control_input, line_art, render_with_control, with_control_map
from ..diffusion import with_seeds
from .request import SketchRequest


class SketchPipeline(Pipeline):
    """Takes a diffusers ControlNet pipeline (the base's components + a line-art or scribble
    ControlNet, built with `from_pipe`); `control_type` says which, scribbles get wider strokes."""

    operation = "sketch"

    def __init__(self, pipe, model: str = "", control_type: str = "lineart") -> None:
        super().__init__(pipe, model)
        self.control_type = control_type

    def render(
        self, request: SketchRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        drawing = images["image"]
        lines = line_art(control_input(drawing, request.output_size(drawing.size)), thicken=self.control_type == "scribble")
        out = render_with_control(self.pipe, request, lines, on_progress)
        parameters = self.parameters(request) | {"control_type": self.control_type}
        return with_control_map(with_seeds(out, request, parameters), request, lines, parameters)
