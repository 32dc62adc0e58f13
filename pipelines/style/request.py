"""What style takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field

from ..request_parts import Sized, MIN_SIDE, MAX_SIDE, DiffusionRequest, ControlNeeds, IPAdapterChoice, StyleImageInput
from ..operation import EXAMPLE_ASSET, NO_SIZE, Operation, style_image_slot


class StyleRequest(Sized, IPAdapterChoice, StyleImageInput, DiffusionRequest):
    """Text-to-image in the style of a reference image (IP-Adapter)."""

    fidelity: float = Field(
        0.5, ge=0, le=1,
        description="ALwrity: how closely the output follows the style image (0–1, default 0.5); the IP-Adapter scale.",
    )
    width: int = Field(512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048.")
    height: int = Field(512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048.")

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # the image encoder resizes the reference; any size the pixel limit allows

    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(ip_adapter=True, ip_adapter_id=self.ip_adapter_id)


OPERATION = Operation(
    name="style",
    summary="Render a prompt in the style of a reference image (IP-Adapter).",
    request=StyleRequest,
    pipeline="StylePipeline",
    model_kind="base",
    diffusers_task="text-to-image",
    # ALwrity sends the style reference of its `style` operation as `control_image_base64`.
    slots=(style_image_slot(("control_image", "control_image_base64")),),
    # A template's exact (off-8) sizes need the text-to-image crop; style takes aspect_ratio instead.
    templates=NO_SIZE,
    quality=True,
    aspect_ratio=True,
    examples=({
        "prompt": "A lighthouse at dusk", "style_image_asset_id": EXAMPLE_ASSET,
        "fidelity": 0.6, "aspect_ratio": "16:9", "seed": 7,
    },),
)
