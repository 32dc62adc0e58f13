"""What style-transfer takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field

from ..request_parts import MAX_PROMPT, ImageInput, DiffusionRequest, ControlNeeds, ControlNetOptions, IPAdapterChoice, StyleImageInput, ControlRequest
from ..operation import CONTROL_IMAGE, EXAMPLE_ASSET, NO_SIZE, Operation, style_image_slot


class StyleTransferRequest(ControlNetOptions, IPAdapterChoice, StyleImageInput, ImageInput, DiffusionRequest):
    """Restyle a content image after a style image: image-to-image from the content image,
    a Canny ControlNet on the content's edges keeping its composition, an IP-Adapter on the
    style image."""

    prompt: str = Field("", max_length=MAX_PROMPT, description="Optional steer (≤ 2000 characters).")
    style_strength: float = Field(
        1.0, ge=0, le=1, description="ALwrity: how strongly the style image's look is applied (0–1, default 1); the IP-Adapter scale.",
    )
    composition_fidelity: float = Field(
        0.9, ge=0, le=1,
        description="ALwrity: how closely the content image's composition is kept (0–1, default 0.9); the conditioning "
        "scale of a Canny ControlNet on the content image's edges.",
    )
    change_strength: float = Field(
        0.9, ge=0, le=1,
        description="ALwrity: how far the output may move from the content image (0–1, default 0.9); the image-to-image "
        "strength (diffusers runs steps × change_strength of them; 0 returns the content image).",
    )

    def input_assets(self) -> dict[str, str]:
        return ImageInput.input_assets(self) | StyleImageInput.input_assets(self)

    output_size = ControlRequest.output_size

    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(control_types=("canny",), ip_adapter=True, controlnet_id=self.controlnet_id,
                            ip_adapter_id=self.ip_adapter_id)


OPERATION = Operation(
    name="style-transfer",
    summary="Restyle a content image after a style image, keeping its composition "
    "(IP-Adapter + Canny ControlNet, image-to-image).",
    request=StyleTransferRequest,
    pipeline="StyleTransferPipeline",
    model_kind="base",
    diffusers_task="image-to-image",
    slots=(CONTROL_IMAGE, style_image_slot()),
    templates=NO_SIZE,
    quality=True,
    examples=({
        "image_asset_id": EXAMPLE_ASSET, "style_image_asset_id": "ast_89abcdef0123456789abcdef",
        "style_strength": 1.0, "composition_fidelity": 0.9, "change_strength": 0.9, "seed": 7,
    },),
)
