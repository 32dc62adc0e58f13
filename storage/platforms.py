"""Social platforms and their image formats, read from one JSON data file.

The file shipped is core/data/platforms.json (sizes, ratios, safe zones, file types and
max file sizes as the platforms publish them); `RENDERQ_PLATFORMS_FILE` points at another.
The API lists it (GET /v1/platforms) and resolves a social-formats request's platforms and
format names against it at submit time, so a run records the exact formats it rendered.

The catalog's types are its own: storage imports nothing of pipelines/. The API turns a
catalog format into the social-formats request's format (pipelines/social_formats/request.py,
which has a SafeZone of the same fields) when it resolves a request.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.settings import DATA_DIR, Settings

DEFAULT_PLATFORMS_FILE = DATA_DIR / "platforms.json"
MEGABYTE = 1_000_000  # max_size_mb is in MB: the stricter reading where a platform means MiB
SLUG = r"^[a-z0-9][a-z0-9-]{0,59}$"
# The largest side of a format the catalog takes: the social-formats request's own limit
# (pipelines/social_formats/request.py MAX_FORMAT_SIDE), so every format listed can be rendered.
MAX_FORMAT_SIDE = 4096


class SafeZone(BaseModel):
    """Margins a platform's interface may cover, as fractions of the image's height (top,
    bottom) and width (left, right): keep text and faces out of them."""

    model_config = ConfigDict(extra="forbid")

    top: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the top edge (0–0.5).")
    bottom: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the bottom edge (0–0.5).")
    left: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the left edge (0–0.5).")
    right: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the right edge (0–0.5).")


class PlatformFormat(BaseModel):
    id: str = Field(..., pattern=SLUG, description="Slug id; pass it (or the name) in format_names.")
    name: str = Field(..., min_length=1, max_length=100)
    width: int = Field(..., ge=1, le=MAX_FORMAT_SIDE, description="Output width, pixels.")
    height: int = Field(..., ge=1, le=MAX_FORMAT_SIDE, description="Output height, pixels.")
    ratio: str = Field(..., description="Aspect ratio as the platform states it (1:1, 4:5, 1.91:1).")
    safe_zone: SafeZone = Field(default_factory=SafeZone)
    file_types: list[str] = Field(..., min_length=1, description="File types the platform takes (JPG, PNG).")
    max_size_mb: float = Field(..., gt=0, description="Largest file, MB (1,000,000 bytes).")
    default: bool = Field(False, description="Rendered when a request names no format for this platform.")

    @property
    def max_bytes(self) -> int:
        return int(self.max_size_mb * MEGABYTE)

    def takes(self, output_format: str) -> bool:
        """Whether the platform takes files of `output_format` (png, jpg) in this format."""
        return output_format.upper() in {t.upper().replace("JPEG", "JPG") for t in self.file_types}

    def matches(self, wanted: str) -> bool:
        return wanted.strip().lower() in (self.id, self.name.lower())


class Platform(BaseModel):
    id: str = Field(..., pattern=SLUG)
    name: str = Field(..., min_length=1, max_length=100)
    aliases: list[str] = Field(default_factory=list, description="Other names accepted (twitter for x).")
    source: str = Field("", description="Where the figures were published.")
    formats: list[PlatformFormat] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_formats(self) -> "Platform":
        ids = [f.id for f in self.formats]
        if len(set(ids)) != len(ids):
            raise ValueError(f"platform {self.id}: format ids repeat")
        return self

    @property
    def default_format(self) -> PlatformFormat:
        return next((f for f in self.formats if f.default), self.formats[0])

    def format(self, wanted: str) -> PlatformFormat | None:
        """The format whose id or name (any case) is `wanted`."""
        return next((f for f in self.formats if f.matches(wanted)), None)


class PlatformCatalog:
    def __init__(self, platforms: list[Platform]) -> None:
        self.platforms = platforms
        self._by_name = {name.lower(): p for p in platforms for name in (p.id, *p.aliases)}

    @classmethod
    def from_settings(cls, settings: Settings) -> "PlatformCatalog":
        return _load(settings.platforms_file)

    def get(self, name: str) -> Platform | None:
        """The platform with this id or alias (any case)."""
        return self._by_name.get(name.strip().lower())


@lru_cache(maxsize=4)
def _load(path: Path) -> PlatformCatalog:
    raw = json.loads(Path(path).read_text())
    return PlatformCatalog([Platform.model_validate(item) for item in raw["platforms"]])
