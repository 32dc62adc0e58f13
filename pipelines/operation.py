"""What an operation declares about itself, in its own folder (`pipelines/<operation>/request.py`
holds one `OPERATION`): its name (also its URL, `POST /v1/{name}`, and the run record's
`operation`), its typed request, the model it runs on, its input-image slots, what a template
may set, and what callers may send besides the request. The registry, the API's routes and
bodies, the OpenAPI examples and pricing are derived from these declarations. Pydantic only:
the API imports them, and torch stays out of its process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Slot:
    """An input image: `image`, `mask`, `style_image`. The API takes it as a file part, as base64
    (`{name}` or `{name}_base64`, plus `aliases`: the names reference APIs use) or as
    `{name}_asset_id`, and the pipeline gets it decoded under `name`."""

    name: str
    description: str
    asset_description: str
    required: bool = True
    aliases: tuple[str, ...] = ()


IMAGE = Slot(
    "image",
    "The input image: base64 or a data URL (JSON; alias `image_base64`), or a file part "
    "(multipart/form-data). PNG, JPEG or WebP, at most 10 MB.",
    "Instead of `image`: an asset from POST /v1/assets or a generated image's asset_id.",
)
MASK = Slot(
    "mask",
    "Mask image (same size as the image): base64/data URL or a file part; alias `mask_base64`.",
    "Instead of `mask`: a mask asset.",
    required=False,
)
# ALwrity sends the image a control operation follows as `control_image(_base64)`.
CONTROL_IMAGE = Slot(
    "image",
    "The control image: base64 or a data URL (JSON; aliases `image_base64`, and ALwrity's "
    "`control_image_base64`), or a file part `image` or `control_image` (multipart/form-data). PNG, JPEG or "
    "WebP, at most 10 MB.",
    IMAGE.asset_description,
    aliases=("control_image", "control_image_base64"),
)


def style_image_slot(aliases: tuple[str, ...] = ()) -> Slot:
    """The style reference image of style and style-transfer, under extra `aliases`."""
    return Slot(
        "style_image",
        "The style reference image: base64 or a data URL (JSON; alias `style_image_base64`"
        + "".join(f", `{alias}`" for alias in aliases) + "), or a file part `style_image`"
        + "".join(f" or `{alias}`" for alias in aliases if not alias.endswith("_base64")) + " (multipart/form-data). "
        "PNG, JPEG or WebP, at most 10 MB.",
        "Instead of `style_image`: an asset id of the style reference.",
        aliases=aliases,
    )


# A 1×1 PNG as a data URL: the examples' stand-in for an image sent inline.
PNG_1PX = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
EXAMPLE_ASSET = "ast_0123456789abcdef01234567"

# What a template sets, by default everything; operations whose output size follows an input image leave size out.
ALL_TEMPLATE_FIELDS = ("size", "quality", "style_preset")
NO_SIZE = ("quality", "style_preset")


def model_id_field(description: str):
    """`model_id` of an operation that runs on one model of a kind that is not a base."""
    return Field("", max_length=200, description=description)


@dataclass(frozen=True)
class Operation:
    """One operation, as its folder declares it."""

    name: str
    summary: str
    request: type[BaseModel]  # what the pipeline renders, as the run record stores it
    pipeline: str  # class name in pipelines/<operation>/pipeline.py
    model_kind: str | None  # catalog kind of its model_id (base, upscaler, …); None: model-free
    # For base models: which pipeline `from_pipe` derives (with a ControlNet when the request's
    # `control_needs()` names one: text-to-image → ControlNet, image-to-image → ControlNet img2img).
    diffusers_task: str | None = None
    # A second model the pipeline needs, named by the request's `mask_model_id`: the
    # text-segmentation model that finds the region to edit from words.
    mask_model_kind: str | None = None
    slots: tuple[Slot, ...] = ()
    # What a template sets on this operation's request: size, quality, style_preset; () takes none.
    templates: tuple[str, ...] = ()
    quality: bool = False  # takes a quality tier (LOW/MID/HIGH)
    aspect_ratio: bool = False  # takes aspect_ratio instead of width/height
    # What callers send besides the request: fields that replace the request's (a first base of
    # the body) or that the API turns into the request (upscale's `auto`, social formats' names).
    caller_fields: type[BaseModel] | None = None
    body: type[BaseModel] | None = None  # the body's request part, when it is not `request`
    examples: tuple[dict[str, Any], ...] = ()
    body_name: str = ""  # the body's name in the OpenAPI schema; {Name}Create by default

    @property
    def module(self) -> str:
        """Its folder under pipelines/."""
        return self.name.replace("-", "_")

    @property
    def schema_name(self) -> str:
        return self.body_name or "".join(part.title() for part in self.name.split("-")) + "Create"


class RequestRejected(ValueError):
    """A request that validates field by field but cannot be served as asked (an unknown
    platform, say): the API answers it as the problem `slug` with `status`."""

    def __init__(self, slug: str, status: int, detail: str) -> None:
        super().__init__(detail)
        self.slug, self.status, self.detail = slug, status, detail
