"""What every renderq pipeline returns and how it reports progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from PIL import Image

# Called after every denoising step with (steps done, steps in all). Returning False asks
# the pipeline to stop at once; it then raises `RenderInterrupted`.
ProgressCallback = Callable[[int, int], "bool | None"]


class RenderInterrupted(Exception):
    """The progress callback asked the render to stop."""


class OutputTooLarge(ValueError):
    """An output does not fit its format's max file size even at the lowest quality tried."""


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    parameters: dict = field(default_factory=dict)
    role: str = "image"  # else what the render worked from, returned when asked (see `worked_from`)
    # A pipeline that encodes its own file (social formats: JPEG, size limits) sets these;
    # otherwise the worker stores a PNG carrying `parameters`.
    encoded: bytes | None = None
    content_type: str = "image/png"
    # What the caller is told about this image besides its size: StoredImage field names
    # (social formats: platform, format_id, format_name).
    labels: dict[str, str] = field(default_factory=dict)


def worked_from(image: Image.Image, role: str, parameters: dict) -> GeneratedImage:
    """An output that is not a rendering but what the render worked from, returned when asked:
    a search edit's mask (`role` "mask"), a ControlNet's control map ("control"). It goes last,
    so images[0] is always a rendered image, has no seed of its own (0), and is not charged."""
    return GeneratedImage(image=image, seed=0, parameters=parameters | {"role": role}, role=role)


class Pipeline(Protocol):
    """A loaded model that turns a typed request into images."""

    def __call__(self, request, on_progress: ProgressCallback | None = None) -> list[GeneratedImage]: ...


class NothingMatched(ValueError):
    """A search found nothing to edit in the image (its mask is empty)."""
