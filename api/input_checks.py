"""Checks of an operation's input images that need their pixels, made at submit while the bytes
are in hand, so a run that could only come back unchanged is refused rather than queued and
charged. Pillow only: the API process never imports numpy."""

from __future__ import annotations

import io
from typing import Callable

from PIL import Image, ImageChops

from core.problems import ProblemError

TRANSPARENT = [0, 0, 0, 0]  # inpaint's default mask colour (pipelines/inpaint/pipeline.py)


def any_colour_match(image: Image.Image, rgba: list[int], threshold_percent: int) -> bool:
    """Whether some pixel has every RGBA channel within `threshold_percent` of 255 of `rgba`:
    pipelines/masks.mask_from_color's rule, with one lookup table per channel."""
    tolerance = threshold_percent * 255 / 100
    hit = None
    for band, target in zip(image.convert("RGBA").split(), rgba):
        matched = band.point([255 if abs(value - target) <= tolerance else 0 for value in range(256)])
        hit = matched if hit is None else ImageChops.multiply(hit, matched)
        if hit.getbbox() is None:
            return False
    return True


def any_white(mask: Image.Image) -> bool:
    """Whether a black-and-white mask repaints anything (pipelines/masks.mask_from_image: grey ≥ 128)."""
    return mask.convert("L").point([255 if value >= 128 else 0 for value in range(256)]).getbbox() is not None


def _decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def inpaint_mask_selects(prepared) -> None:
    """An inpaint whose mask selects no pixel is refused (422 empty-mask)."""
    request, inputs = prepared.request, prepared.inputs
    mask, image = inputs.get("mask"), inputs.get("image")
    if mask is not None and request.mask_color_rgba is None:
        if mask.data is not None and not any_white(_decoded(mask.data)):
            raise ProblemError("empty-mask", 422, detail="the mask image has no white (grey ≥ 128) pixel: nothing would be "
                               "repainted. White marks what to repaint, or give mask_color_rgba.")
        return
    source, where = (mask, "the mask image") if mask is not None else (image, "the input image (no mask image was given)")
    if source is None or source.data is None:  # an asset: not read here, the worker leaves it unchanged
        return
    colour = request.mask_color_rgba if request.mask_color_rgba is not None else TRANSPARENT
    if not any_colour_match(_decoded(source.data), colour, request.mask_color_threshold):
        raise ProblemError(
            "empty-mask", 422, detail=f"no pixel of {where} is within {request.mask_color_threshold}% of mask_color_rgba "
            f"{colour}{' (the default: fully transparent pixels)' if request.mask_color_rgba is None else ''}: nothing would "
            "be repainted. Send a mask image (white = repaint), or a mask_color_rgba that occurs in it.",
        )


CHECKS: dict[str, Callable] = {"inpaint": inpaint_mask_selects}


def check_input_images(prepared) -> None:
    check = CHECKS.get(prepared.body.OPERATION.name)
    if check is not None:
        check(prepared)
