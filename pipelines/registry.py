"""Every operation renderq runs: its name (also its URL, `POST /v1/{name}`, and the run
record's `operation`), its request type, the kind of model it runs on, and its pipeline
module (livepeer ai-runner style: operation ↔ module ↔ URL).

Importing this module loads no model code (torch stays unimported), so the API can use it
to validate requests; the worker calls `build_pipeline` to get the runnable pipeline.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import BaseModel

from .requests import (
    GeneralEditRequest,
    ImageToImageRequest,
    InpaintRequest,
    OutpaintRequest,
    RemoveBackgroundRequest,
    SearchRecolorRequest,
    SearchReplaceRequest,
    SketchRequest,
    SocialFormatsRequest,
    StructureRequest,
    StyleRequest,
    StyleTransferRequest,
    TextToImageRequest,
    UpscaleRequest,
    VariationsRequest,
)


@dataclass(frozen=True)
class Operation:
    name: str
    request_type: type[BaseModel]
    pipeline: str  # "module:Class" under pipelines/
    model_kind: str | None  # catalog kind of its model_id (base, upscaler, background-removal, instruct-pix2pix); None: model-free
    # For base models: which pipeline `from_pipe` derives (with a ControlNet when the request's
    # `control_needs()` names one: text-to-image → ControlNet, image-to-image → ControlNet img2img).
    diffusers_task: str | None = None
    summary: str = ""
    # A second model the pipeline needs, named by the request's `mask_model_id`: the
    # text-segmentation model that finds the region to edit from words.
    mask_model_kind: str | None = None


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("text-to-image", TextToImageRequest, "text_to_image:TextToImagePipeline", "base", "text-to-image",
                  "Render images from a prompt."),
        Operation("image-to-image", ImageToImageRequest, "image_to_image:ImageToImagePipeline", "base", "image-to-image",
                  "Render a new image from a prompt and an input image."),
        Operation("variations", VariationsRequest, "variations:VariationsPipeline", "base", "image-to-image",
                  "Render 1–4 variations of an input image, each with its own seed."),
        Operation("inpaint", InpaintRequest, "inpaint:InpaintPipeline", "base", "inpaint",
                  "Repaint the masked part of an image; pixels outside the mask are kept."),
        Operation("outpaint", OutpaintRequest, "outpaint:OutpaintPipeline", "base", "inpaint",
                  "Extend an image beyond its borders."),
        Operation("upscale", UpscaleRequest, "upscale:UpscalePipeline", "upscaler", None,
                  "Enlarge an image ×2/×3/×4 or to a target size."),
        Operation("remove-background", RemoveBackgroundRequest, "remove_background:RemoveBackgroundPipeline",
                  "background-removal", None, "Cut the subject out: an RGBA PNG with a transparent background."),
        Operation("search-replace", SearchReplaceRequest, "search_edit:SearchReplacePipeline", "base", "inpaint",
                  "Find something by words and paint something else in its place; other pixels are kept.",
                  mask_model_kind="text-segmentation"),
        Operation("search-recolor", SearchRecolorRequest, "search_edit:SearchRecolorPipeline", "base", "inpaint",
                  "Find something by words and change its colour or material; other pixels are kept.",
                  mask_model_kind="text-segmentation"),
        Operation("general-edit", GeneralEditRequest, "general_edit:GeneralEditPipeline", "instruct-pix2pix", None,
                  "Edit an image by an instruction (\"make it winter\") with an InstructPix2Pix model."),
        Operation("sketch", SketchRequest, "sketch:SketchPipeline", "base", "text-to-image",
                  "Render an image that follows a drawing or line art (line-art/scribble ControlNet)."),
        Operation("structure", StructureRequest, "structure:StructurePipeline", "base", "text-to-image",
                  "Render an image that keeps the edges or the depth of an input image (Canny/depth ControlNet)."),
        Operation("style", StyleRequest, "style:StylePipeline", "base", "text-to-image",
                  "Render a prompt in the style of a reference image (IP-Adapter)."),
        Operation("style-transfer", StyleTransferRequest, "style_transfer:StyleTransferPipeline", "base",
                  "image-to-image", "Restyle a content image after a style image, keeping its composition "
                  "(IP-Adapter + Canny ControlNet, image-to-image)."),
        Operation("social-formats", SocialFormatsRequest, "social_formats:SocialFormatsPipeline", None, None,
                  "Cut an image to social platforms' formats (smart crop, center, or fit), one image per format."),
    )
}


def build_pipeline(operation: Operation, loaded, model_name: str, options: dict | None = None):
    """The runnable pipeline of `operation` around an already loaded model (a diffusers
    pipeline, a transformers model, or None for model-free modes)."""
    module_name, class_name = operation.pipeline.split(":")
    cls = getattr(importlib.import_module(f"{__package__}.{module_name}"), class_name)
    if operation.name == "text-to-image":
        return cls(model_name, pipe=loaded)
    return cls(loaded, model_name, **(options or {}))
