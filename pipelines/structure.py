"""Structure: the edges or the depth of an input image keep the composition (a Canny or depth
ControlNet)."""

from __future__ import annotations

from PIL import Image

from .base import GeneratedImage, ProgressCallback
from .control import DepthEstimator, canny_edges, control_input, depth_map, render_with_control, with_control_map
from .diffusion import with_seeds
from .requests import StructureRequest


class StructurePipeline:
    """Takes a diffusers ControlNet pipeline built with `from_pipe` (a Canny ControlNet for
    `edges`, a depth one for `depth`) and, for depth, the depth-estimation model."""

    name = "structure"

    def __init__(self, pipe, model: str = "", control_type: str = "canny",
                 depth_estimator: DepthEstimator | None = None) -> None:
        self.pipe, self.model, self.control_type, self.depth_estimator = pipe, model, control_type, depth_estimator

    def control_map(self, request: StructureRequest, image: Image.Image) -> Image.Image:
        source = control_input(image, request.output_size(image.size))
        if request.structure_type == "depth":
            return depth_map(self.depth_estimator, source)
        return canny_edges(source)

    def __call__(
        self, request: StructureRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        control_map = self.control_map(request, images["image"])
        out = render_with_control(self.pipe, request, control_map, on_progress)
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model, "operation": self.name}
        return with_control_map(with_seeds(out, request, parameters), request, control_map, parameters)
