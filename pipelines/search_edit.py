"""Edit by words: find a region from a phrase with a text-segmentation model, then inpaint it
(search-replace paints something else there, search-recolor repaints it in a new colour).
Pixels outside the mask are identical to the input, as with inpaint."""

from __future__ import annotations

from PIL import Image

from .base import GeneratedImage, NothingMatched, Pipeline, ProgressCallback, worked_from
from .diffusion import with_seeds
from .inpaint.pipeline import inpaint
from .masks import grow
from .request_parts import SearchEditRequest
from .text_segmentation import TextSegmenter, text_mask


def search_mask(segmenter: TextSegmenter, request: SearchEditRequest, image: Image.Image) -> Image.Image:
    """The grown binary mask of what the request searches for; NothingMatched when it is empty."""
    mask = grow(text_mask(segmenter, image, request.search_text(), request.mask_threshold), request.grow_mask)
    if mask.getbbox() is None:
        raise NothingMatched(
            f"nothing in the image matched {request.search_text()!r} above mask_threshold {request.mask_threshold}; "
            "lower mask_threshold or rephrase"
        )
    return mask


class SearchEditPipeline(Pipeline):
    """Takes the base's diffusers inpainting pipeline (built with `from_pipe`) and the
    text-segmentation model that makes the mask."""


    def __init__(self, pipe, model: str = "", segmenter: TextSegmenter | None = None) -> None:
        super().__init__(pipe, model)
        self.segmenter = segmenter

    def render(
        self,
        request: SearchEditRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        image = images["image"]
        mask = search_mask(self.segmenter, request, image)
        painting = request.model_copy(update={"prompt": request.inpaint_prompt()})
        out = inpaint(self.pipe, painting, image, mask, request.strength, on_progress)
        parameters = self.parameters(request)
        generated = with_seeds(out, request, parameters)
        if request.return_mask:
            generated.append(worked_from(mask, "mask", parameters))
        return generated

