"""What image-to-image takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field

from ..request_parts import MIN_SIDE, MAX_SIDE, ExactSize, fit_side, ImageInput, DiffusionRequest
from ..operation import ALL_TEMPLATE_FIELDS, EXAMPLE_ASSET, IMAGE, Operation


class ImageToImageRequest(ExactSize, ImageInput, DiffusionRequest):
    strength: float = Field(0.8, ge=0, le=1, description="How far to move from the input image (0 keeps it, 1 ignores it).")
    width: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Output width; the input's (rounded down to 8) when omitted.")
    height: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Output height; the input's (rounded down to 8) when omitted.")

    def render_key(self, input_sizes: dict[str, tuple[int, int]]) -> tuple:
        # One call renders every image at one size, steps, guidance and strength; prompts,
        # seeds and input images (resized to that size) may differ.
        return self.output_size(input_sizes["image"]), self.num_inference_steps, self.guidance_scale, self.strength

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.width or fit_side(input_size[0]), self.height or fit_side(input_size[1])


OPERATION = Operation(
    name="image-to-image",
    summary="Render a new image from a prompt and an input image.",
    request=ImageToImageRequest,
    pipeline="ImageToImagePipeline",
    model_kind="base",
    diffusers_task="image-to-image",
    slots=(IMAGE,),
    templates=ALL_TEMPLATE_FIELDS,
    quality=True,
    examples=({
        "prompt": "The same mug, in watercolour", "image_asset_id": EXAMPLE_ASSET,
        "strength": 0.6, "num_inference_steps": 25, "guidance_scale": 7.5, "seed": 7, "loras": {"tiny-lora": 0.8},
    },),
)
