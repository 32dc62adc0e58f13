"""What outpaint takes: its typed request and its operation declaration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..request_parts import MAX_SIDE, MAX_PROMPT, InputSizeError, ImageInput, DiffusionRequest
from ..operation import EXAMPLE_ASSET, IMAGE, NO_SIZE, Operation


MAX_EXPAND = 1024

OutpaintDirection = Literal["UP", "DOWN", "LEFT", "RIGHT", "ALL"]

CropSide = Literal["LEFT", "RIGHT", "TOP", "BOTTOM"]

class OutpaintRequest(ImageInput, DiffusionRequest):
    prompt: str = Field("", max_length=MAX_PROMPT, description="What the new area should show (optional).")
    direction: OutpaintDirection | None = Field(
        None, description="LimeWire: extend UP/DOWN by half the height, LEFT/RIGHT by half the width, ALL by a quarter on every side."
    )
    crop_side: CropSide | None = Field(
        None, description="LimeWire: the side cropped when the extended image would pass 2048 pixels on a side."
    )
    expand_left: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on the left (0–1024).")
    expand_right: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on the right (0–1024).")
    expand_up: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on top (0–1024).")
    expand_down: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added at the bottom (0–1024).")
    strength: float = Field(1.0, ge=0, le=1, description="Denoising strength in the new area.")

    @model_validator(mode="after")
    def _one_way(self) -> "OutpaintRequest":
        expands = (self.expand_left, self.expand_right, self.expand_up, self.expand_down)
        if self.direction is not None and any(expands):
            raise ValueError("give either direction or expand_left/right/up/down, not both")
        if self.direction is None and not any(expands):
            raise ValueError("give a direction (UP, DOWN, LEFT, RIGHT, ALL) or at least one expand_* above 0")
        return self

    def padding(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) pixels to add before any crop."""
        width, height = size
        if self.direction is None:
            return self.expand_left, self.expand_up, self.expand_right, self.expand_down
        half_w, half_h = width // 2, height // 2
        return {
            "UP": (0, half_h, 0, 0),
            "DOWN": (0, 0, 0, half_h),
            "LEFT": (half_w, 0, 0, 0),
            "RIGHT": (0, 0, half_w, 0),
            "ALL": (width // 4, height // 4, width // 4, height // 4),
        }[self.direction]

    def canvas(self, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Output size, and the box (left, top, right, bottom) of the padded canvas it keeps:
        the canvas is cropped on `crop_side` where it would pass MAX_SIDE."""
        left, top, right, bottom = self.padding(size)
        width, height = size[0] + left + right, size[1] + top + bottom
        over_w, over_h = max(0, width - MAX_SIDE), max(0, height - MAX_SIDE)
        if (over_w or over_h) and self.crop_side is None:
            raise InputSizeError(f"the outpainted image would be {width}×{height}, over {MAX_SIDE}; give crop_side to allow a crop")
        if over_w and self.crop_side not in ("LEFT", "RIGHT") or over_h and self.crop_side not in ("TOP", "BOTTOM"):
            raise InputSizeError(f"the outpainted image would be {width}×{height}; crop_side {self.crop_side} cannot bring it within {MAX_SIDE}")
        box = (
            over_w if self.crop_side == "LEFT" else 0,
            over_h if self.crop_side == "TOP" else 0,
            width - (over_w if self.crop_side == "RIGHT" else 0),
            height - (over_h if self.crop_side == "BOTTOM" else 0),
        )
        return (box[2] - box[0], box[3] - box[1]), box

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.canvas(input_size)[0]

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        super().check_input_sizes(sizes)
        self.canvas(sizes["image"])


OPERATION = Operation(
    name="outpaint",
    summary="Extend an image beyond its borders.",
    request=OutpaintRequest,
    pipeline="OutpaintPipeline",
    model_kind="base",
    diffusers_task="inpaint",
    slots=(IMAGE,),
    templates=NO_SIZE,  # the canvas size follows the input
    quality=True,
    examples=({
        "prompt": "a wider view of the beach", "image_asset_id": EXAMPLE_ASSET,
        "direction": "UP", "crop_side": "LEFT",
    },),
)
