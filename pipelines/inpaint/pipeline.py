"""Inpainting: repaint the masked pixels from a prompt; every other pixel stays as it was."""

from __future__ import annotations

from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from ..diffusion import run_diffusion, steps_run, with_seeds
from ..masks import keep_outside_mask, mask_from_color, mask_from_image
from .request import InpaintRequest
from ..request_parts import DiffusionRequest, fit_side

TRANSPARENT = [0, 0, 0, 0]  # LimeWire's default mask colour


def resolve_mask(request: InpaintRequest, image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """The binary mask as LimeWire defines it: `mask_color_rgba` (default transparent pixels)
    matched in the mask image when given, else in the input image; a mask image without a
    colour is read as black-and-white (white = repaint)."""
    if mask is not None and request.mask_color_rgba is None:
        return mask_from_image(mask)
    colour = request.mask_color_rgba if request.mask_color_rgba is not None else TRANSPARENT
    return mask_from_color(mask if mask is not None else image, colour, request.mask_color_threshold)


def inpaint(pipe, request: DiffusionRequest, image: Image.Image, mask: Image.Image, strength: float,
            on_progress: ProgressCallback | None) -> list[Image.Image]:
    """Run the model at the nearest multiple-of-8 size, then paste the original back outside
    the mask at the original size, so untouched pixels are identical to the input."""
    original = image.convert("RGB")
    if mask.getbbox() is None:  # nothing to repaint
        return [original.copy() for _ in range(request.num_images)]
    work = (fit_side(original.width), fit_side(original.height))
    out = run_diffusion(
        pipe, request, max(1, steps_run(request, strength)), on_progress,
        image=original.resize(work, Image.Resampling.LANCZOS),
        mask_image=mask.resize(work, Image.Resampling.NEAREST),
        width=work[0], height=work[1], strength=strength,
    )
    return [keep_outside_mask(original, generated, mask) for generated in out]


class InpaintPipeline(Pipeline):
    """Takes a diffusers inpainting pipeline (built from the base with `from_pipe`)."""

    operation = "inpaint"


    def render(
        self,
        request: InpaintRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        image = images["image"]
        mask = resolve_mask(request, image, images.get("mask"))
        out = inpaint(self.pipe, request, image, mask, request.strength, on_progress)
        parameters = self.parameters(request)
        return with_seeds(out, request, parameters)
