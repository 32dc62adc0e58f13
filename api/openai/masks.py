"""OpenAI's mask rule, "the fully transparent pixels are the ones to edit", as the black-and-white
mask renderq's inpaint takes (white = repaint). Pillow only: the API process is numpy-free."""

from __future__ import annotations

import io

from core.settings import Settings
from storage.image_codec import ImageRejected, open_image

from ..inputs import rejected
from .fields import openai_error


def alpha_mask(data: bytes, settings: Settings) -> bytes:
    """A PNG, white where `data` (a mask, or the image itself when no mask is sent) is fully
    transparent, black elsewhere."""
    try:
        image, _ = open_image(data, settings.max_upload_bytes, settings.max_input_pixels)
    except ImageRejected as exc:
        raise rejected(exc, "mask") from None
    if "A" not in image.getbands() and "transparency" not in image.info:
        raise openai_error("The mask (or, without one, the image) must have an alpha channel: its fully transparent "
                           "pixels are the ones edited.", param="mask", code="invalid_image")
    alpha = image.convert("RGBA").getchannel("A")
    mask = alpha.point(lambda value: 255 if value == 0 else 0)
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()
