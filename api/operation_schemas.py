"""Request bodies of the image operations (POST /v1/{operation}), as callers send them.

Each extends its pipeline request (pipelines/requests.py, where limits are stated once) with
the ways an input image can arrive: a file part (multipart), base64 or a data URL in JSON,
or an `*_asset_id`. The API turns whichever came into a stored asset before enqueueing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from pipelines.requests import (
    GeneralEditRequest,
    ImageToImageRequest,
    InpaintRequest,
    OutpaintRequest,
    RemoveBackgroundRequest,
    SearchRecolorRequest,
    SearchReplaceRequest,
    SketchRequest,
    SocialFormat,
    SocialFormatsOptions,
    SocialFormatsRequest,
    StructureRequest,
    StyleRequest,
    StyleTransferRequest,
    UpscaleRequest,
    VariationsRequest,
)
from storage.assets import ASSET_ID_PATTERN
from storage.platforms import PlatformCatalog

from .delivery_options import DELIVERY_FIELDS, DeliveryOptions
from .model_selection import ModelSelection
from .problems import ProblemError
from .quality import QualityField
from .templates import TEMPLATE_FIELDS, TemplateFields
from .schemas import AspectRatioSize

if TYPE_CHECKING:
    from .services import Services

# Stands for an input image's asset id before the images are stored (and in cost estimates).
PLACEHOLDER_ASSET = "ast_" + "0" * 24
PNG_1PX = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


class ImageSlot(BaseModel):
    image: str | None = Field(
        None,
        validation_alias=AliasChoices("image", "image_base64"),
        description="The input image: base64 or a data URL (JSON; alias `image_base64`), or a file part "
        "(multipart/form-data). PNG, JPEG or WebP, at most 10 MB.",
    )
    image_asset_id: str | None = Field(
        None, pattern=ASSET_ID_PATTERN,
        description="Instead of `image`: an asset from POST /v1/assets or a generated image's asset_id.",
    )


class MaskSlot(BaseModel):
    mask: str | None = Field(
        None,
        validation_alias=AliasChoices("mask", "mask_base64"),
        description="Mask image (same size as the image): base64/data URL or a file part; alias `mask_base64`.",
    )
    mask_asset_id: str | None = Field(None, pattern=ASSET_ID_PATTERN, description="Instead of `mask`: a mask asset.")


class ControlImageSlot(ImageSlot):
    image: str | None = Field(
        None,
        validation_alias=AliasChoices("image", "image_base64", "control_image", "control_image_base64"),
        description="The control image: base64 or a data URL (JSON; aliases `image_base64`, and ALwrity's "
        "`control_image_base64`), or a file part `image` or `control_image` (multipart/form-data). PNG, JPEG or "
        "WebP, at most 10 MB.",
    )


def _style_image_field(aliases: tuple[str, ...] = ()):
    return Field(
        None,
        validation_alias=AliasChoices("style_image", "style_image_base64", *aliases),
        description="The style reference image: base64 or a data URL (JSON; alias `style_image_base64`"
        + "".join(f", `{alias}`" for alias in aliases) + "), or a file part `style_image`"
        + "".join(f" or `{alias}`" for alias in aliases if not alias.endswith("_base64")) + " (multipart/form-data). "
        "PNG, JPEG or WebP, at most 10 MB.",
    )


class StyleImageSlot(BaseModel):
    style_image: str | None = _style_image_field()
    style_image_asset_id: str | None = Field(
        None, pattern=ASSET_ID_PATTERN, description="Instead of `style_image`: an asset id of the style reference."
    )


class OperationCreate(DeliveryOptions):
    """What every operation body shares; `SLOTS` names its image inputs, required first.
    Delivery options (priority, start deadline, webhook) come with every operation."""

    SLOTS: ClassVar[tuple[str, ...]] = ("image",)
    REQUIRED_SLOTS: ClassVar[tuple[str, ...]] = ("image",)
    INLINE_FIELDS: ClassVar[set[str]] = {
        "image", "mask", "style_image", "model_id", "loras", "lora_weight", "quality", *TEMPLATE_FIELDS, *DELIVERY_FIELDS,
    }

    def resolve_defaults(self, services: "Services") -> None:
        """Settle defaults that depend on what the deployment serves (its model catalog,
        its platform formats) before render_request; a 4xx ProblemError for what it lacks."""

    def render_request(self, asset_ids: dict[str, str], seed: int | None = None):
        """The pipeline request this body stands for, its inputs given as asset ids."""
        render_type = self.RENDER_TYPE  # type: ignore[attr-defined]
        fields = self.model_dump(exclude=self.INLINE_FIELDS)
        fields = {k: v for k, v in fields.items() if k in render_type.model_fields}
        fields |= {f"{slot}_asset_id": asset_id for slot, asset_id in asset_ids.items()}
        if "seed" in render_type.model_fields and fields.get("seed") is None:
            fields["seed"] = seed
        return render_type.model_validate(fields)


def _config(example: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"examples": [example]})


class ImageToImageCreate(TemplateFields, ImageSlot, ModelSelection, QualityField, OperationCreate, ImageToImageRequest):
    model_config = _config({
        "prompt": "The same mug, in watercolour", "image_asset_id": "ast_0123456789abcdef01234567",
        "strength": 0.6, "num_inference_steps": 25, "guidance_scale": 7.5, "seed": 7, "loras": {"tiny-lora": 0.8},
    })
    RENDER_TYPE: ClassVar = ImageToImageRequest


class VariationsCreate(TemplateFields, ImageSlot, ModelSelection, QualityField, OperationCreate, VariationsRequest):
    model_config = _config({"image": PNG_1PX, "num_images": 4, "strength": 0.6, "seed": 7})
    RENDER_TYPE: ClassVar = VariationsRequest


class InpaintCreate(TemplateFields, ImageSlot, MaskSlot, ModelSelection, QualityField, OperationCreate, InpaintRequest):
    model_config = _config({
        "prompt": "A cute baby sloth", "image_asset_id": "ast_0123456789abcdef01234567",
        "mask_color_rgba": [255, 255, 255, 255], "mask_color_threshold": 10, "seed": 7,
    })
    RENDER_TYPE: ClassVar = InpaintRequest
    SLOTS: ClassVar = ("image", "mask")
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")  # the output keeps the input's size


class OutpaintCreate(TemplateFields, ImageSlot, ModelSelection, QualityField, OperationCreate, OutpaintRequest):
    model_config = _config({
        "prompt": "a wider view of the beach", "image_asset_id": "ast_0123456789abcdef01234567",
        "direction": "UP", "crop_side": "LEFT",
    })
    RENDER_TYPE: ClassVar = OutpaintRequest
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")  # the canvas size follows the input


class UpscaleCreate(ImageSlot, OperationCreate, UpscaleRequest):
    model_config = _config({"image_asset_id": "ast_0123456789abcdef01234567", "upscale_factor": 2, "mode": "model"})
    RENDER_TYPE: ClassVar = UpscaleRequest
    model_id: str = Field("", max_length=200, description="An upscaler from GET /v1/models; the first listed when empty.")
    mode: Literal["auto", "fast", "model"] = Field(
        "auto",
        description="`fast`: Lanczos resampling, no model. `model`: the deployment's super-resolution model, then "
        "Lanczos to the exact size. `auto` (default): `model` when the deployment serves an upscaler, else `fast`.",
    )

    def resolve_defaults(self, services: "Services") -> None:
        if self.mode == "auto":
            self.mode = "model" if self.model_id or services.catalog.first("upscaler") is not None else "fast"


class RemoveBackgroundCreate(ImageSlot, OperationCreate, RemoveBackgroundRequest):
    model_config = _config({"image": PNG_1PX})
    RENDER_TYPE: ClassVar = RemoveBackgroundRequest
    model_id: str = Field(
        "", max_length=200, description="A background-removal model from GET /v1/models; the first listed when empty."
    )


class SearchReplaceCreate(TemplateFields, ImageSlot, ModelSelection, QualityField, OperationCreate, SearchReplaceRequest):
    model_config = _config({
        "image_asset_id": "ast_0123456789abcdef01234567", "search_prompt": "the cat", "prompt": "a golden retriever",
        "mask_threshold": 0.4, "grow_mask": 3, "return_mask": True, "seed": 7,
    })
    RENDER_TYPE: ClassVar = SearchReplaceRequest
    # The style preset dresses what is painted in; the output keeps the input's size. (Recolor's
    # prompt is a colour and general-edit's an instruction: a preset's words would garble them.)
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")


class SearchRecolorCreate(ImageSlot, ModelSelection, QualityField, OperationCreate, SearchRecolorRequest):
    model_config = _config({
        "image_asset_id": "ast_0123456789abcdef01234567", "select_prompt": "the car", "prompt": "glossy red",
        "grow_mask": 3, "strength": 0.75, "seed": 7,
    })
    RENDER_TYPE: ClassVar = SearchRecolorRequest


class GeneralEditCreate(ImageSlot, QualityField, OperationCreate, GeneralEditRequest):
    model_config = _config({
        "image_asset_id": "ast_0123456789abcdef01234567", "prompt": "make it winter",
        "image_guidance_scale": 1.5, "guidance_scale": 7.5, "seed": 7,
    })
    RENDER_TYPE: ClassVar = GeneralEditRequest
    model_id: str = Field(
        "", max_length=200, description="An instruct-pix2pix model from GET /v1/models; the first listed when empty."
    )


class SketchCreate(TemplateFields, ControlImageSlot, ModelSelection, QualityField, OperationCreate, SketchRequest):
    model_config = _config({
        "prompt": "Modern office interior", "control_image_base64": PNG_1PX, "control_strength": 0.8, "seed": 7,
    })
    RENDER_TYPE: ClassVar = SketchRequest
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")  # the output takes the control image's size


class StructureCreate(TemplateFields, ControlImageSlot, ModelSelection, QualityField, OperationCreate, StructureRequest):
    model_config = _config({
        "prompt": "The same room in a snowy forest", "image_asset_id": "ast_0123456789abcdef01234567",
        "structure_type": "depth", "control_strength": 0.7, "seed": 7,
    })
    RENDER_TYPE: ClassVar = StructureRequest
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")


class StyleCreate(TemplateFields, StyleImageSlot, AspectRatioSize, ModelSelection, QualityField, OperationCreate, StyleRequest):
    model_config = _config({
        "prompt": "A lighthouse at dusk", "style_image_asset_id": "ast_0123456789abcdef01234567",
        "fidelity": 0.6, "aspect_ratio": "16:9", "seed": 7,
    })
    RENDER_TYPE: ClassVar = StyleRequest
    # A template's exact (off-8) sizes need the text-to-image crop; style takes aspect_ratio instead.
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")
    SLOTS: ClassVar = ("style_image",)
    REQUIRED_SLOTS: ClassVar = ("style_image",)
    # ALwrity sends the style reference of its `style` operation as `control_image_base64`.
    style_image: str | None = _style_image_field(("control_image", "control_image_base64"))


class StyleTransferCreate(TemplateFields, ControlImageSlot, StyleImageSlot, ModelSelection, QualityField, OperationCreate,
                          StyleTransferRequest):
    model_config = _config({
        "image_asset_id": "ast_0123456789abcdef01234567", "style_image_asset_id": "ast_89abcdef0123456789abcdef",
        "style_strength": 1.0, "composition_fidelity": 0.9, "change_strength": 0.9, "seed": 7,
    })
    RENDER_TYPE: ClassVar = StyleTransferRequest
    TEMPLATE_APPLIES: ClassVar = ("quality", "style_preset")
    SLOTS: ClassVar = ("image", "style_image")
    REQUIRED_SLOTS: ClassVar = ("image", "style_image")


MAX_PLATFORMS = 7
MAX_FORMATS_PER_PLATFORM = 10
PlatformName = Annotated[str, Field(min_length=1, max_length=40)]
FormatName = Annotated[str, Field(min_length=1, max_length=100)]


class SocialFormatsCreate(ImageSlot, OperationCreate, SocialFormatsOptions):
    """ALwrity's social optimizer: `platforms` and `format_names` name the formats (GET
    /v1/platforms); the run renders one image per format."""

    model_config = _config({
        "image_asset_id": "ast_0123456789abcdef01234567", "platforms": ["instagram", "x", "linkedin"],
        "format_names": {"instagram": ["feed-square", "Story"], "x": "Post (Landscape)"},
        "crop_mode": "smart", "show_safe_zones": False, "output_format": "jpg",
    })
    RENDER_TYPE: ClassVar = SocialFormatsRequest
    platforms: list[PlatformName] = Field(
        ..., min_length=1, max_length=MAX_PLATFORMS,
        description="Platform ids from GET /v1/platforms (instagram, facebook, x, linkedin, youtube, pinterest, "
        "tiktok; `twitter` is X), 1–7. Multipart: a JSON list or comma-separated.",
        examples=[["instagram", "facebook", "linkedin"]],
    )
    format_names: dict[PlatformName, FormatName | Annotated[list[FormatName], Field(min_length=1, max_length=MAX_FORMATS_PER_PLATFORM)]] = Field(
        default_factory=dict,
        description="Per platform, the format(s) to render, by id or name (up to 10 each, e.g. "
        '{"instagram": ["feed-square", "Story"]}). A platform left out gets its default format (the one '
        "GET /v1/platforms/{platform}/formats marks default).",
    )
    _formats: list[SocialFormat] = PrivateAttr(default_factory=list)

    @field_validator("platforms", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    def resolve_defaults(self, services: "Services") -> None:
        self._formats = resolve_formats(services.platforms, self)

    def render_request(self, asset_ids: dict[str, str], seed: int | None = None):
        fields = self.model_dump(include=set(SocialFormatsOptions.model_fields))
        return SocialFormatsRequest.model_validate(fields | {"image_asset_id": asset_ids["image"], "formats": self._formats})


def resolve_formats(catalog: PlatformCatalog, body: SocialFormatsCreate) -> list[SocialFormat]:
    """The formats a request names, in order, each once; a 422 problem for an unknown
    platform or format, or a file type the platform does not take."""
    formats: list[SocialFormat] = []
    seen: set[tuple[str, str]] = set()
    platforms = [catalog.get(name) for name in body.platforms]
    for name, platform in zip(body.platforms, platforms):
        if platform is None:
            raise ProblemError("unknown-platform", 422, detail=f"no platform {name!r}; GET /v1/platforms lists them")
    for key in body.format_names:
        if catalog.get(key) not in platforms:
            raise ProblemError("validation-error", 422, detail=f"format_names names {key!r}, which is not in platforms")
    for name, platform in zip(body.platforms, platforms):
        wanted = next((v for k, v in body.format_names.items() if catalog.get(k) is platform), None)
        wanted = [wanted] if isinstance(wanted, str) else wanted
        for wanted_name in wanted or [platform.default_format.id]:
            entry = platform.format(wanted_name)
            if entry is None:
                known = ", ".join(f.id for f in platform.formats)
                raise ProblemError("unknown-format", 422, detail=f"{platform.name} has no format {wanted_name!r}; its formats: {known}")
            if not entry.takes(body.output_format):
                raise ProblemError("validation-error", 422, detail=f"{platform.name} {entry.name} takes {', '.join(entry.file_types)}, not {body.output_format}")
            if (platform.id, entry.id) not in seen:
                seen.add((platform.id, entry.id))
                formats.append(SocialFormat(
                    platform=platform.id, format_id=entry.id, name=entry.name, width=entry.width, height=entry.height,
                    safe_zone=entry.safe_zone, max_bytes=entry.max_bytes,
                ))
    return formats


CREATE_SCHEMAS: dict[str, type[OperationCreate]] = {
    "image-to-image": ImageToImageCreate,
    "variations": VariationsCreate,
    "inpaint": InpaintCreate,
    "outpaint": OutpaintCreate,
    "upscale": UpscaleCreate,
    "remove-background": RemoveBackgroundCreate,
    "search-replace": SearchReplaceCreate,
    "search-recolor": SearchRecolorCreate,
    "general-edit": GeneralEditCreate,
    "sketch": SketchCreate,
    "structure": StructureCreate,
    "style": StyleCreate,
    "style-transfer": StyleTransferCreate,
    "social-formats": SocialFormatsCreate,
}
