"""What upscale takes: its typed request and its operation declaration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..request_parts import InputSizeError, ImageInput
from ..operation import EXAMPLE_ASSET, IMAGE, Operation, model_id_field


# LimeWire's upscaling input limits, per factor (their documented maximum image sizes).
UPSCALE_MAX_INPUT: dict[int, tuple[int, int]] = {2: (1024, 1024), 3: (680, 680), 4: (1256, 1256)}

MAX_UPSCALE_SIDE = 8192

class UpscaleRequest(ImageInput):
    model_config = ConfigDict(extra="forbid")

    upscale_factor: Literal[2, 3, 4] | None = Field(
        None,
        description="LimeWire: 2, 3 or 4. Largest input: ×2 1024×1024 (1,048,576 px), ×3 680×680 (462,400 px), "
        "×4 1256×1256 (1,577,536 px). Omit it to give target_width/target_height instead.",
    )
    target_width: int | None = Field(None, ge=1, le=MAX_UPSCALE_SIDE, description="ALwrity: output width (≤ 8192); the aspect ratio is kept when only one side is given.")
    target_height: int | None = Field(None, ge=1, le=MAX_UPSCALE_SIDE, description="ALwrity: output height (≤ 8192).")
    mode: Literal["fast", "model"] = Field(
        "model",
        description="`fast`: Lanczos resampling, no model. `model`: the deployment's super-resolution model, "
        "then Lanczos to the exact size.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> "UpscaleRequest":
        targets = self.target_width is not None or self.target_height is not None
        if self.upscale_factor is not None and targets:
            raise ValueError("give either upscale_factor or target_width/target_height, not both")
        if self.upscale_factor is None and not targets:
            raise ValueError("give upscale_factor (2, 3, 4) or target_width/target_height")
        return self

    @property
    def uses_model(self) -> bool:
        """False in `fast` mode: the worker then loads no upscaler for this run."""
        return self.mode == "model"

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        width, height = size
        if self.upscale_factor is not None:
            return width * self.upscale_factor, height * self.upscale_factor
        if self.target_width and self.target_height:
            return self.target_width, self.target_height
        if self.target_width:
            return self.target_width, max(1, round(height * self.target_width / width))
        return max(1, round(width * self.target_height / height)), self.target_height

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        width, height = sizes["image"]
        if self.upscale_factor is not None:
            max_w, max_h = UPSCALE_MAX_INPUT[self.upscale_factor]
            if width * height > max_w * max_h:
                raise InputSizeError(
                    f"the image is {width}×{height}; ×{self.upscale_factor} takes at most {max_w}×{max_h} ({max_w * max_h} pixels)"
                )
        out_w, out_h = self.output_size((width, height))
        if out_w < width or out_h < height:
            raise InputSizeError(f"target {out_w}×{out_h} is smaller than the image ({width}×{height}); upscaling only grows")
        if max(out_w, out_h) > MAX_UPSCALE_SIDE:
            raise InputSizeError(f"the output would be {out_w}×{out_h}; each side is at most {MAX_UPSCALE_SIDE}")


# What an upscale caller sends besides the request: `auto` mode, settled at submit.
class UpscaleChoices(BaseModel):
    model_id: str = model_id_field("An upscaler from GET /v1/models; the first listed when empty.")
    mode: Literal["auto", "fast", "model"] = Field(
        "auto",
        description="`fast`: Lanczos resampling, no model. `model`: the deployment's super-resolution model, then "
        "Lanczos to the exact size. `auto` (default): `model` when the deployment serves an upscaler, else `fast`.",
    )

    def resolve_defaults(self, deployment) -> None:
        """`auto` becomes `model` when the deployment (its model `catalog`) serves an upscaler."""
        if self.mode == "auto":
            self.mode = "model" if self.model_id or deployment.catalog.first("upscaler") is not None else "fast"


OPERATION = Operation(
    name="upscale",
    summary="Enlarge an image ×2/×3/×4 or to a target size.",
    request=UpscaleRequest,
    pipeline="UpscalePipeline",
    model_kind="upscaler",
    slots=(IMAGE,),
    caller_fields=UpscaleChoices,
    examples=({"image_asset_id": EXAMPLE_ASSET, "upscale_factor": 2, "mode": "model"},),
)
