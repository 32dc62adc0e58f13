"""GET /v1/platforms: the social platforms and formats POST /v1/social-formats renders (read
from the platform data file, storage/platforms.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from storage.platforms import Platform, PlatformFormat, SafeZone

from core.problems import ProblemError

from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(prefix="/v1/platforms", tags=["platforms"])


class FormatView(BaseModel):
    id: str = Field(..., description="Slug id; pass it (or the name) in format_names.")
    name: str
    width: int = Field(..., description="Output width, pixels.")
    height: int = Field(..., description="Output height, pixels.")
    ratio: str = Field(..., description="Aspect ratio as the platform states it.")
    safe_zone: SafeZone = Field(..., description="Margins (share of each side) the platform's interface may cover.")
    file_types: list[str] = Field(..., description="File types the platform takes (JPG, PNG); output_format must be one.")
    max_size_mb: float = Field(..., description="Largest file, MB of 1,000,000 bytes; outputs are re-encoded to fit.")
    max_bytes: int = Field(..., description="max_size_mb in bytes: every output of this format is at most this large.")
    default: bool = Field(..., description="Rendered when format_names names nothing for this platform.")


class PlatformView(BaseModel):
    id: str = Field(..., description="Pass it in platforms.")
    name: str
    aliases: list[str] = Field(..., description="Other names platforms accepts for it (twitter for x).")
    source: str = Field(..., description="Where the platform publishes these figures.")
    default_format: str = Field(..., description="Id of the format rendered when none is named.")
    formats: list[FormatView]


class PlatformList(BaseModel):
    platforms: list[PlatformView]


class FormatList(BaseModel):
    platform: str
    formats: list[FormatView]


def format_view(entry: PlatformFormat) -> FormatView:
    return FormatView(**entry.model_dump(), max_bytes=entry.max_bytes)


def platform_view(platform: Platform) -> PlatformView:
    return PlatformView(
        id=platform.id, name=platform.name, aliases=platform.aliases, source=platform.source,
        default_format=platform.default_format.id,
        formats=[format_view(f) for f in platform.formats],
    )


@router.get("", response_model=PlatformList, summary="Social platforms and their image formats")
def list_platforms(services: Services = Depends(get_services)) -> PlatformList:
    return PlatformList(platforms=[platform_view(p) for p in services.platforms.platforms])


@router.get(
    "/{platform}/formats", response_model=FormatList, summary="One platform's image formats (ALwrity's social formats)",
    responses={404: PROBLEM_RESPONSES[404]},
)
def list_formats(
    platform: str = Path(..., max_length=40, description="Platform id or alias (twitter for x)."),
    services: Services = Depends(get_services),
) -> FormatList:
    found = services.platforms.get(platform)
    if found is None:
        raise ProblemError("unknown-platform", 404, detail=f"no platform {platform!r}; GET /v1/platforms lists them")
    return FormatList(platform=found.id, formats=[format_view(f) for f in found.formats])
