"""What remove-background takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..request_parts import ImageInput
from ..operation import IMAGE, PNG_1PX, Operation, model_id_field


class RemoveBackgroundRequest(ImageInput):
    model_config = ConfigDict(extra="forbid")

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # any size the pixel limit allows


class RemoveBackgroundChoices(BaseModel):
    model_id: str = model_id_field("A background-removal model from GET /v1/models; the first listed when empty.")


OPERATION = Operation(
    name="remove-background",
    summary="Cut the subject out: an RGBA PNG with a transparent background.",
    request=RemoveBackgroundRequest,
    pipeline="RemoveBackgroundPipeline",
    model_kind="background-removal",
    slots=(IMAGE,),
    caller_fields=RemoveBackgroundChoices,
    examples=({"image": PNG_1PX},),
)
