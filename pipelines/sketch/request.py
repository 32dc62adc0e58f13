"""What sketch takes: its typed request and its operation declaration."""

from __future__ import annotations

from ..request_parts import ControlNeeds, ControlRequest
from ..operation import CONTROL_IMAGE, NO_SIZE, PNG_1PX, Operation


class SketchRequest(ControlRequest):
    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(control_types=("lineart", "scribble"), controlnet_id=self.controlnet_id)


OPERATION = Operation(
    name="sketch",
    summary="Render an image that follows a drawing or line art (line-art/scribble ControlNet).",
    request=SketchRequest,
    pipeline="SketchPipeline",
    model_kind="base",
    diffusers_task="text-to-image",
    slots=(CONTROL_IMAGE,),
    templates=NO_SIZE,  # the output takes the control image's size
    quality=True,
    examples=({"prompt": "Modern office interior", "control_image_base64": PNG_1PX, "control_strength": 0.8, "seed": 7},),
)
