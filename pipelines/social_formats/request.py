"""What social-formats takes: its typed request and its operation declaration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..operation import EXAMPLE_ASSET, IMAGE, Operation, RequestRejected
from ..request_parts import ImageInput


# --- social formats ---------------------------------------------------------------------
MAX_SOCIAL_OUTPUTS = 32

MAX_FORMAT_SIDE = 4096

class SafeZone(BaseModel):
    """Margins a platform's interface may cover, as fractions of the image's height (top,
    bottom) and width (left, right): keep text and faces out of them."""

    model_config = ConfigDict(extra="forbid")

    top: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the top edge (0–0.5).")
    bottom: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the bottom edge (0–0.5).")
    left: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the left edge (0–0.5).")
    right: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the right edge (0–0.5).")

class SocialFormat(BaseModel):
    """One output size of a platform, as the platform catalog described it at submit time."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(..., max_length=40, description="Platform id (instagram, x, …).")
    format_id: str = Field(..., max_length=60, description="The format's slug id (feed-square, story, …).")
    name: str = Field(..., max_length=100, description="The format's name (ALwrity's `format`).")
    width: int = Field(..., ge=1, le=MAX_FORMAT_SIDE)
    height: int = Field(..., ge=1, le=MAX_FORMAT_SIDE)
    safe_zone: SafeZone = Field(default_factory=SafeZone)
    max_bytes: int = Field(..., gt=0, description="Largest file the platform takes; outputs are re-encoded to fit.")

class FocalPoint(BaseModel):
    """A point of the input image, as fractions of its width (x) and height (y)."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(..., ge=0, le=1, description="0 is the left edge, 1 the right edge.")
    y: float = Field(..., ge=0, le=1, description="0 is the top edge, 1 the bottom edge.")

class SocialFormatsOptions(BaseModel):
    """How an image is cut to social formats (ALwrity's social optimizer fields)."""

    model_config = ConfigDict(extra="forbid")

    crop_mode: Literal["smart", "center", "fit"] = Field(
        "smart",
        description="`smart` (default): the crop of the format's ratio that keeps what the image shows (edges, "
        "skin tones, saturated detail; smartcrop). `center`: the middle. `fit`: the whole image, scaled down and "
        "letterboxed on a blurred copy of itself.",
    )
    focal_point: FocalPoint | None = Field(
        None,
        description="Centre the crop here, {x, y} as fractions 0–1 of the width and height: takes precedence over "
        "what smart sees, and moves the center crop. Not with `fit` (it crops nothing).",
    )
    show_safe_zones: bool = Field(False, description="Tint the margins the platform's interface may cover, and outline the safe area.")
    output_format: Literal["png", "jpg"] = Field("png", description="png (default) or jpg; alias `jpeg` accepted.")

    @field_validator("output_format", mode="before")
    @classmethod
    def _jpeg_alias(cls, value):
        return "jpg" if isinstance(value, str) and value.lower() in ("jpeg", "jpg") else value

    @model_validator(mode="after")
    def _focal_point_crops(self) -> "SocialFormatsOptions":
        if self.focal_point is not None and self.crop_mode == "fit":
            raise ValueError("focal_point places a crop; crop_mode fit crops nothing (use smart or center)")
        return self

class SocialFormatsRequest(ImageInput, SocialFormatsOptions):
    """One image cut to several platforms' formats; model-free."""

    formats: list[SocialFormat] = Field(
        ..., min_length=1, max_length=MAX_SOCIAL_OUTPUTS, description="The formats rendered, one output each, in order."
    )

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # any size the pixel limit allows: outputs are resized to each format

    def output_sizes(self, input_sizes: dict[str, tuple[int, int]]) -> tuple[list[tuple[int, int]], None]:
        """One output per format, at the format's size (what a cost estimate prices)."""
        return [(f.width, f.height) for f in self.formats], None


MAX_PLATFORMS = 7
MAX_FORMATS_PER_PLATFORM = 10
PlatformName = Annotated[str, Field(min_length=1, max_length=40)]
FormatName = Annotated[str, Field(min_length=1, max_length=100)]


class SocialFormatsChoices(BaseModel):
    """ALwrity's social optimizer: `platforms` and `format_names` name the formats (GET
    /v1/platforms); the run renders one image per format."""

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

    def resolve_defaults(self, deployment) -> None:
        """The formats named, from the deployment's platform catalog (`deployment.platforms`)."""
        self._formats = resolve_formats(deployment.platforms, self)

    def request_fields(self) -> dict:
        return {"formats": self._formats}


def resolve_formats(catalog, body: SocialFormatsChoices) -> list[SocialFormat]:
    """The formats a request names, in order, each once, from a platform catalog
    (storage/platforms.py); RequestRejected for an unknown platform or format, or a file type
    the platform does not take."""
    formats: list[SocialFormat] = []
    seen: set[tuple[str, str]] = set()
    platforms = [catalog.get(name) for name in body.platforms]
    for name, platform in zip(body.platforms, platforms):
        if platform is None:
            raise RequestRejected("unknown-platform", 422, f"no platform {name!r}; GET /v1/platforms lists them")
    for key in body.format_names:
        if catalog.get(key) not in platforms:
            raise RequestRejected("validation-error", 422, f"format_names names {key!r}, which is not in platforms")
    for name, platform in zip(body.platforms, platforms):
        wanted = next((v for k, v in body.format_names.items() if catalog.get(k) is platform), None)
        wanted = [wanted] if isinstance(wanted, str) else wanted
        for wanted_name in wanted or [platform.default_format.id]:
            entry = platform.format(wanted_name)
            if entry is None:
                known = ", ".join(f.id for f in platform.formats)
                raise RequestRejected("unknown-format", 422, f"{platform.name} has no format {wanted_name!r}; its formats: {known}")
            if not entry.takes(body.output_format):
                raise RequestRejected("validation-error", 422, f"{platform.name} {entry.name} takes {', '.join(entry.file_types)}, not {body.output_format}")
            if (platform.id, entry.id) not in seen:
                seen.add((platform.id, entry.id))
                formats.append(SocialFormat(
                    platform=platform.id, format_id=entry.id, name=entry.name, width=entry.width, height=entry.height,
                    safe_zone=entry.safe_zone.model_dump(), max_bytes=entry.max_bytes,
                ))
    return formats


OPERATION = Operation(
    name="social-formats",
    summary="Cut an image to social platforms' formats (smart crop, center, or fit), one image per format.",
    request=SocialFormatsRequest,
    pipeline="SocialFormatsPipeline",
    model_kind=None,
    slots=(IMAGE,),
    caller_fields=SocialFormatsChoices,
    body=SocialFormatsOptions,
    examples=({
        "image_asset_id": EXAMPLE_ASSET, "platforms": ["instagram", "x", "linkedin"],
        "format_names": {"instagram": ["feed-square", "Story"], "x": "Post (Landscape)"},
        "crop_mode": "smart", "show_safe_zones": False, "output_format": "jpg",
    },),
)
