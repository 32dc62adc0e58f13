"""What structure takes: its typed request and its operation declaration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..request_parts import ControlNeeds, ControlRequest
from ..operation import CONTROL_IMAGE, EXAMPLE_ASSET, NO_SIZE, Operation


StructureType = Literal["edges", "depth"]

class StructureRequest(ControlRequest):
    structure_type: StructureType = Field(
        "edges",
        description="What of the input image is kept: `edges` (Canny edges, no model; default) or `depth` (a depth "
        "map from the deployment's depth-estimation model).",
    )

    def control_needs(self) -> ControlNeeds:
        if self.structure_type == "depth":
            return ControlNeeds(control_types=("depth",), depth_estimator=True, controlnet_id=self.controlnet_id)
        return ControlNeeds(control_types=("canny",), controlnet_id=self.controlnet_id)


OPERATION = Operation(
    name="structure",
    summary="Render an image that keeps the edges or the depth of an input image (Canny/depth ControlNet).",
    request=StructureRequest,
    pipeline="StructurePipeline",
    model_kind="base",
    diffusers_task="text-to-image",
    slots=(CONTROL_IMAGE,),
    templates=NO_SIZE,
    quality=True,
    examples=({
        "prompt": "The same room in a snowy forest", "image_asset_id": EXAMPLE_ASSET,
        "structure_type": "depth", "control_strength": 0.7, "seed": 7,
    },),
)
