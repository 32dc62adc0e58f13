"""Control maps — what a ControlNet is conditioned on — made from the caller's image, and the
ControlNet render they feed (sketch, structure, style-transfer).

Line art and Canny edges are model-free (OpenCV); depth comes from a transformers
depth-estimation model (DPT, Depth Anything, …) loaded from a hub id or a local directory.
Every map is an RGB image of the render's size, white features on black, as the public
ControlNets (lllyasviel/control_v11p_sd15_lineart, …_canny, …_scribble, …f1p_sd15_depth) take.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from .base import GeneratedImage, ProgressCallback, worked_from
from .diffusion import run_diffusion
from .request_parts import ControlNetOptions, ControlRequest

CANNY_LOW, CANNY_HIGH = 100, 200  # the thresholds diffusers' ControlNet examples use


def _gray(image: Image.Image) -> np.ndarray:
    """8-bit grey of `image`, transparent parts read as white paper."""
    if "A" in image.getbands():
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"))


def _rgb(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask).convert("RGB")


def line_art(image: Image.Image, thicken: bool = False) -> Image.Image:
    """A drawing as a line map: its strokes white on black. Dark strokes on light paper (the
    usual sketch) are inverted first; Otsu's threshold then separates strokes from paper.
    `thicken` widens strokes to the few pixels a scribble ControlNet expects."""
    gray = _gray(image)
    if np.median(gray) > 127:  # light paper: the strokes are the dark pixels
        gray = 255 - gray
    _, lines = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if thicken:
        lines = cv2.dilate(lines, np.ones((3, 3), np.uint8), iterations=1)
    return _rgb(lines)


def canny_edges(image: Image.Image, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> Image.Image:
    """Canny edges of `image`, white on black."""
    return _rgb(cv2.Canny(_gray(image), low, high))


@dataclass
class DepthEstimator:
    model: object  # a transformers AutoModelForDepthEstimation
    processor: object


def depth_map(estimator: DepthEstimator, image: Image.Image) -> Image.Image:
    """The estimated depth of `image` at its own size, scaled to 0–255 per image. DPT-style
    models predict relative inverse depth, so near is bright, as depth ControlNets expect."""
    parameter = next(estimator.model.parameters())
    inputs = estimator.processor(images=image.convert("RGB"), return_tensors="pt")
    pixels = inputs["pixel_values"].to(parameter.device, parameter.dtype)
    with torch.inference_mode():
        predicted = estimator.model(pixel_values=pixels).predicted_depth.float()
        depth = torch.nn.functional.interpolate(predicted[:, None], size=(image.height, image.width), mode="bicubic")[0, 0]
    low, high = depth.min(), depth.max()
    scaled = (depth - low) / (high - low) if high > low else torch.zeros_like(depth)
    return _rgb((scaled * 255).round().clamp(0, 255).byte().cpu().numpy())


def render_with_control(
    pipe, request: ControlRequest, control_map: Image.Image, on_progress: ProgressCallback | None
) -> list[Image.Image]:
    """Text-to-image through a ControlNet pipeline at the control map's size."""
    return run_diffusion(
        pipe, request, request.num_inference_steps, on_progress, image=control_map,
        width=control_map.width, height=control_map.height, controlnet_conditioning_scale=request.control_strength,
    )


def with_control_map(generated: list[GeneratedImage], request: ControlNetOptions, control_map: Image.Image,
                     parameters: dict) -> list[GeneratedImage]:
    """The rendered images, and last the control map when the request asks for it."""
    return [*generated, worked_from(control_map, "control", parameters)] if request.return_control_map else generated


def control_input(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The input image at the render's size."""
    return image.convert("RGB") if image.size == size else image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
