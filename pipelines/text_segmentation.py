"""Masks from words: a text-prompted segmentation model (transformers' CLIPSeg) scores every
pixel for how well it matches a phrase; pixels above a threshold form the mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .masks import REPAINT


@dataclass
class TextSegmenter:
    model: object  # CLIPSegForImageSegmentation
    processor: object  # CLIPSegProcessor: image resizing and normalisation, tokenizer


def match_probability(segmenter: TextSegmenter, image: Image.Image, text: str) -> np.ndarray:
    """Per-pixel probability (0–1) that the pixel shows `text`, at the image's own size."""
    parameter = next(segmenter.model.parameters())
    inputs = segmenter.processor(text=[text], images=[image.convert("RGB")], padding=True, return_tensors="pt")
    inputs = {k: v.to(parameter.device, parameter.dtype) if v.is_floating_point() else v.to(parameter.device)
              for k, v in inputs.items()}
    with torch.inference_mode():
        logits = segmenter.model(**inputs).logits.float()
    logits = logits.reshape(1, 1, *logits.shape[-2:])  # one phrase, one image: (h, w) whatever the batch squeeze
    logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
    return logits.sigmoid()[0, 0].cpu().numpy()


def text_mask(segmenter: TextSegmenter, image: Image.Image, text: str, threshold: float) -> Image.Image:
    """The binary mask (white = matched) of the pixels whose probability is above `threshold`."""
    hit = match_probability(segmenter, image, text) > threshold
    return Image.fromarray(np.where(hit, REPAINT, 0).astype(np.uint8), mode="L")
