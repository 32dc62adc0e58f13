"""Masks and compositing for inpainting and outpainting (pure Pillow/numpy, no model)."""

from __future__ import annotations

import numpy as np
from PIL import Image

REPAINT = 255  # mask value of pixels the model repaints; 0 keeps the original pixel


def mask_from_color(source: Image.Image, rgba: list[int], threshold_percent: int) -> Image.Image:
    """LimeWire's rule: a pixel is masked when every channel of its RGBA value is within
    `threshold_percent` of 255 of `rgba` ([255,255,255,255] at 10 masks 230–255 per channel)."""
    pixels = np.asarray(source.convert("RGBA"), dtype=np.int16)
    tolerance = threshold_percent * 255 / 100
    hit = (np.abs(pixels - np.asarray(rgba, dtype=np.int16)) <= tolerance).all(axis=-1)
    return Image.fromarray(np.where(hit, REPAINT, 0).astype(np.uint8), mode="L")


def mask_from_image(mask: Image.Image) -> Image.Image:
    """A black-and-white mask image (white = repaint), made strictly binary."""
    grey = np.asarray(mask.convert("L"))
    return Image.fromarray(np.where(grey >= 128, REPAINT, 0).astype(np.uint8), mode="L")


def keep_outside_mask(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """`generated` inside the mask, `original` byte for byte everywhere else."""
    generated = generated.convert(original.mode).resize(original.size, Image.Resampling.LANCZOS)
    return Image.composite(generated, original, mask)


def pad(image: Image.Image, box: tuple[int, int, int, int], padding: tuple[int, int, int, int]) -> tuple[Image.Image, Image.Image]:
    """The image on a canvas grown by `padding` (left, top, right, bottom) then cropped to `box`,
    and the mask of the new area. New pixels start as the nearest edge pixels (a better start
    for the model than black)."""
    left, top, right, bottom = padding
    pixels = np.asarray(image.convert("RGB"))
    grown = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    mask = np.full(grown.shape[:2], REPAINT, dtype=np.uint8)
    mask[top : top + pixels.shape[0], left : left + pixels.shape[1]] = 0
    x0, y0, x1, y1 = box
    return Image.fromarray(grown[y0:y1, x0:x1]), Image.fromarray(mask[y0:y1, x0:x1], mode="L")


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """The mask grown by `pixels` in every direction: a pixel joins when any masked pixel lies
    within a (2·pixels+1)² square around it (a box sum over an integral image, so the cost
    does not depend on `pixels`). Stays strictly binary; never drops a masked pixel."""
    if pixels <= 0:
        return mask
    hit = np.pad(np.asarray(mask) > 0, pixels).astype(np.int32)
    sums = np.pad(hit.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    side = 2 * pixels + 1
    window = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    return Image.fromarray(np.where(window > 0, REPAINT, 0).astype(np.uint8), mode="L")
