"""Structure: the edges or the depth of an input image keep the composition (a Canny or depth
ControlNet)."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..control import DepthEstimator, canny_edges, control_input, depth_map, render_with_control, with_control_map
from ..diffusion import with_seeds
from .request import StructureRequest


class StructurePipeline(Pipeline):
    """Takes a diffusers ControlNet pipeline built with `from_pipe` (a Canny ControlNet for
    `edges`, a depth one for `depth`) and, for depth, the depth-estimation model."""

    operation = "structure"

    def __init__(self, pipe, model: str = "", control_type: str = "canny",
                 depth_estimator: DepthEstimator | None = None) -> None:
        super().__init__(pipe, model)
        self.control_type, self.depth_estimator = control_type, depth_estimator

    def control_map(self, request: StructureRequest, image: Image.Image) -> Image.Image:
        source = control_input(image, request.output_size(image.size))
        if request.structure_type == "depth":
            return depth_map(self.depth_estimator, source)
        return canny_edges(source)

    def render(
        self, request: StructureRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        control_map = self.control_map(request, images["image"])
        out = render_with_control(self.pipe, request, control_map, on_progress)
        parameters = self.parameters(request)
        return with_control_map(with_seeds(out, request, parameters), request, control_map, parameters)
