"""What inpaint takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..request_parts import InputSizeError, ImageInput, DiffusionRequest
from ..operation import EXAMPLE_ASSET, IMAGE, MASK, NO_SIZE, Operation


class InpaintRequest(ImageInput, DiffusionRequest):
    mask_asset_id: str | None = Field(None, description="Asset id of a mask image; white (or the mask colour) is repainted.")
    mask_color_rgba: list[int] | None = Field(
        None, min_length=4, max_length=4,
        description="LimeWire: pixels of this [r,g,b,a] colour are repainted, looked up in the mask image when one is "
        "given, else in the input image. Default [0,0,0,0] (transparent pixels) when there is no mask image.",
    )
    mask_color_threshold: int = Field(
        0, ge=0, le=100,
        description="LimeWire: percent each channel may deviate from mask_color_rgba ([255,255,255,255] with 10 "
        "masks [230,230,230,230]–[255,255,255,255]).",
    )
    strength: float = Field(1.0, ge=0, le=1, description="How far to move from the input inside the mask (0–1).")

    @model_validator(mode="after")
    def _check_colour(self) -> "InpaintRequest":
        if self.mask_color_rgba is not None and not all(0 <= v <= 255 for v in self.mask_color_rgba):
            raise ValueError("mask_color_rgba values must be 0–255")
        return self

    def input_assets(self) -> dict[str, str]:
        return super().input_assets() | ({"mask": self.mask_asset_id} if self.mask_asset_id else {})

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        super().check_input_sizes(sizes)
        if "mask" in sizes and sizes["mask"] != sizes["image"]:
            raise InputSizeError(f"the mask is {sizes['mask'][0]}×{sizes['mask'][1]}; it must be the image's size {sizes['image'][0]}×{sizes['image'][1]}")


OPERATION = Operation(
    name="inpaint",
    summary="Repaint the masked part of an image; pixels outside the mask are kept.",
    request=InpaintRequest,
    pipeline="InpaintPipeline",
    model_kind="base",
    diffusers_task="inpaint",
    slots=(IMAGE, MASK),
    templates=NO_SIZE,  # the output keeps the input's size
    quality=True,
    examples=({
        "prompt": "A cute baby sloth", "image_asset_id": EXAMPLE_ASSET,
        "mask_color_rgba": [255, 255, 255, 255], "mask_color_threshold": 10, "seed": 7,
    },),
)
