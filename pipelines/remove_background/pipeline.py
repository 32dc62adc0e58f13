"""Background removal: a semantic segmentation model (any transformers
`AutoModelForSemanticSegmentation`, e.g. SegFormer) gives each pixel a background
probability; one minus it becomes the alpha channel of an RGBA PNG."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..base import GeneratedImage, Pipeline, ProgressCallback
from .request import RemoveBackgroundRequest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def foreground_probability(model, image: Image.Image, background_label: int, input_size: int) -> np.ndarray:
    """Per-pixel probability of not being background, at the image's own size."""
    parameter = next(model.parameters())
    resized = image.convert("RGB").resize((input_size, input_size), Image.Resampling.BILINEAR)
    pixels = (np.asarray(resized, dtype=np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    tensor = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None].to(parameter.device, parameter.dtype)
    with torch.inference_mode():
        logits = model(pixel_values=tensor).logits.float()
        logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
        background = logits.softmax(dim=1)[0, background_label]
    return (1 - background).cpu().numpy()


class RemoveBackgroundPipeline(Pipeline):
    operation = "remove-background"

    def __init__(self, pipe, model: str = "", background_label: int = 0, input_size: int = 512) -> None:
        super().__init__(pipe, model)
        self.background_label, self.input_size = background_label, input_size

    def cut_out(self, source: Image.Image) -> Image.Image:
        """`source` as RGBA, its background transparent (also text-to-image's `background: transparent`)."""
        alpha = foreground_probability(self.pipe, source, self.background_label, self.input_size)
        out = source.convert("RGBA")
        out.putalpha(Image.fromarray((alpha * 255).round().astype(np.uint8), mode="L"))
        return out

    def render(
        self,
        request: RemoveBackgroundRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        out = self.cut_out(images["image"])
        if on_progress is not None:
            on_progress(1, 1)
        parameters = request.model_dump() | {"operation": self.operation, "model": self.model}
        return [GeneratedImage(image=out, seed=0, parameters=parameters)]
