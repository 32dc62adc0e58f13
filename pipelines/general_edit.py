"""General edit: change an image by an instruction ("make it winter") with an InstructPix2Pix
model, whose UNet sees the input image's latents beside the noise at every step."""

from __future__ import annotations

from PIL import Image

from .base import GeneratedImage, ProgressCallback
from .diffusion import run_diffusion, with_seeds
from .requests import GeneralEditRequest, fit_side


class GeneralEditPipeline:
    """Takes a diffusers StableDiffusionInstructPix2PixPipeline (pipelines/loading.py)."""

    name = "general-edit"

    def __init__(self, pipe, model: str = "") -> None:
        self.pipe, self.model = pipe, model

    def __call__(
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
        parameters = request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model, "operation": self.name}
        return with_seeds(out, request, parameters)
