"""Variations: several image-to-image renders of one input, each with its own seed."""

from __future__ import annotations

from ..image_to_image.pipeline import ImageToImagePipeline


class VariationsPipeline(ImageToImagePipeline):
    """Same model call as image-to-image; the request defaults (no prompt needed, 4 images,
    strength 0.6) are what make it a variations operation."""

    operation = "variations"
