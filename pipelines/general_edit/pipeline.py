"""General edit: change an image by an instruction ("make it winter") with an InstructPix2Pix
model, whose UNet sees the input image's latents beside the noise at every step."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import run_diffusion, with_seeds
from .request import GeneralEditRequest
from ..request_parts import fit_side


class GeneralEditPipeline(Pipeline):
    """Takes a diffusers StableDiffusionInstructPix2PixPipeline (pipelines/loading.py)."""

    operation = "general-edit"


    def render(
        self,
        request: GeneralEditRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        """Runs at the nearest multiple-of-8 size; outputs come back at the input's size."""
        original = images["image"].convert("RGB")
        work = original.resize((fit_side(original.width), fit_side(original.height)), Image.Resampling.LANCZOS)
        out = run_diffusion(
            self.pipe, request, request.num_inference_steps, on_progress,
            # One copy per image: diffusers deprecates repeating a single image for num_images_per_prompt.
            image=[work] * request.num_images, image_guidance_scale=request.image_guidance_scale,
        )
        out = [image.resize(original.size, Image.Resampling.LANCZOS) if image.size != original.size else image
               for image in out]
        parameters = self.parameters(request)
        return with_seeds(out, request, parameters)
