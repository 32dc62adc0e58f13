"""Upscaling: `fast` Lanczos resampling, or a super-resolution model (transformers' Swin2SR)
followed by Lanczos to the exact size asked for."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from .request import UpscaleRequest


TILE = 512  # pixels of input per model call: attention memory grows with the square of a tile
TILE_MARGIN = 16  # context around each tile, cropped away after, so seams do not show


def super_resolve(model, image: Image.Image, tile: int = TILE, margin: int = TILE_MARGIN) -> Image.Image:
    """The image × the model's own factor, in tiles of at most `tile` pixels a side (each
    run with `margin` pixels of context that are cropped off again)."""
    width, height = image.size
    if max(width, height) <= tile:
        return _super_resolve_once(model, image)
    scale = model.config.upscale
    out = Image.new("RGB", (width * scale, height * scale))
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            right, bottom = min(width, left + tile), min(height, top + tile)
            box = (max(0, left - margin), max(0, top - margin), min(width, right + margin), min(height, bottom + margin))
            upscaled = _super_resolve_once(model, image.crop(box))
            inner = ((left - box[0]) * scale, (top - box[1]) * scale, (right - box[0]) * scale, (bottom - box[1]) * scale)
            out.paste(upscaled.crop(inner), (left * scale, top * scale))
    return out


def _super_resolve_once(model, image: Image.Image) -> Image.Image:
    """One pass of the model. Swin2SR takes [0, 1] RGB padded to a multiple of its window."""
    parameter = next(model.parameters())
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    height, width = pixels.shape[-2:]
    window = model.config.window_size
    pad_h, pad_w = (-height) % window, (-width) % window
    pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > max(pad_h, pad_w) else "replicate")
    with torch.inference_mode():
        out = model(pixel_values=pixels.to(parameter.device, parameter.dtype)).reconstruction
    scale = model.config.upscale
    out = out[0, :, : height * scale, : width * scale].float().clamp(0, 1)
    return Image.fromarray((out.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))


class UpscalePipeline(Pipeline):
    operation = "upscale"

    def render(
        self,
        request: UpscaleRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        source = images["image"]
        target = request.output_size(source.size)
        alpha = source.getchannel("A") if "A" in source.getbands() else None
        rgb = source.convert("RGB")
        if request.mode == "model":
            if self.pipe is None:
                raise ValueError("mode 'model' needs an upscaler model; none is configured")
            rgb = super_resolve(self.pipe, rgb)
        out = rgb.resize(target, Image.Resampling.LANCZOS) if rgb.size != target else rgb
        if alpha is not None:  # the alpha channel is resampled, never invented
            out.putalpha(alpha.resize(target, Image.Resampling.LANCZOS))
        if on_progress is not None:
            on_progress(1, 1)
        parameters = request.model_dump() | {"operation": self.operation, "model": self.model if request.mode == "model" else "lanczos"}
        return [GeneratedImage(image=out, seed=0, parameters=parameters)]
