"""Style transfer: a content image restyled after a style image, its composition kept."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..control import canny_edges, control_input, with_control_map
from ..diffusion import run_diffusion, steps_run, with_seeds
from .request import StyleTransferRequest


class StyleTransferPipeline(Pipeline):
    """Takes a diffusers ControlNet image-to-image pipeline (Canny ControlNet, `from_pipe` of
    the base) with an IP-Adapter active. Three knobs, one mechanism each: `change_strength` is
    the image-to-image strength from the content image, `composition_fidelity` the ControlNet
    scale on the content's Canny edges, `style_strength` the IP-Adapter scale."""

    operation = "style-transfer"

    def __init__(self, pipe, model: str = "", control_type: str = "canny") -> None:
        super().__init__(pipe, model)  # control_type: always canny here (the request asks for no other)

    def render(
        self, request: StyleTransferRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        content = control_input(images["image"], request.output_size(images["image"].size))
        parameters = self.parameters(request)
        edges = canny_edges(content)
        steps = steps_run(request, request.change_strength)
        if steps < 1:  # no change asked for: the content image as it is (diffusers refuses zero steps)
            return with_control_map(with_seeds([content.copy() for _ in range(request.num_images)], request, parameters),
                                    request, edges, parameters)
        self.pipe.set_ip_adapter_scale(request.style_strength)
        out = run_diffusion(
            self.pipe, request, steps, on_progress, image=content, control_image=edges,
            strength=request.change_strength, controlnet_conditioning_scale=request.composition_fidelity,
            ip_adapter_image=images["style_image"].convert("RGB"), width=content.width, height=content.height,
        )
        return with_control_map(with_seeds(out, request, parameters), request, edges, parameters)
