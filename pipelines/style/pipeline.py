"""Style: render a prompt in the look of a reference image (IP-Adapter)."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import run_diffusion, with_seeds
from .request import StyleRequest


class StylePipeline(Pipeline):
    """Takes the base text-to-image pipeline with an IP-Adapter loaded and active (the worker's
    model cache switches it on for this job and off for the next job that has no style image)."""

    operation = "style"


    def render(
        self, request: StyleRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        self.pipe.set_ip_adapter_scale(request.fidelity)
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress,
            ip_adapter_image=images["style_image"].convert("RGB"), width=request.width, height=request.height,
        )
        parameters = self.parameters(request)
        return with_seeds(out, request, parameters)
