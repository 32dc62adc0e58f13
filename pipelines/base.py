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


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    parameters: dict = field(default_factory=dict)
    role: str = "image"  # "mask": the mask a search edit made, returned when asked


class Pipeline(Protocol):
    """A loaded model that turns a typed request into images."""

    def __call__(self, request, on_progress: ProgressCallback | None = None) -> list[GeneratedImage]: ...


class NothingMatched(ValueError):
    """A search found nothing to edit in the image (its mask is empty)."""
