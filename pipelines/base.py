"""What every renderq pipeline returns and how it reports progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

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


@dataclass
class Job:
    """One request to render: the typed request, its decoded input images by slot name
    ("image", "mask", "style_image"), and where its progress goes."""

    request: Any
    images: dict[str, Image.Image] = field(default_factory=dict)
    on_progress: ProgressCallback | None = None
    # Set when its progress callback asked it to stop: its images are dropped (the others of
    # a batched call go on).
    stopped: bool = False


class Pipeline(ABC):
    """The contract every operation's pipeline keeps: built around what the worker's model cache
    hands it (`pipe`, a diffusers pipeline or another loaded model, None for model-free work;
    `model`, the name it reports; `options`, companion models and settings from the catalog), it
    loads nothing itself. It takes a list of jobs and returns each job's images, in order: one
    request is a list of one, and a pipeline that can render compatible requests in one model
    call overrides `__call__`; the others render them one after another."""

    operation: str = ""  # the operation's name, recorded in every image's parameters

    def __init__(self, pipe: Any = None, model: str = "", **options: Any) -> None:
        self.pipe, self.model, self.options = pipe, model, options

    def __call__(self, jobs: Sequence[Job]) -> list[list[GeneratedImage]]:
        out = []
        for job in jobs:
            try:
                out.append(self.render(job.request, job.on_progress, job.images))
            except RenderInterrupted:  # its cancel: the next job still renders
                job.stopped = True
                out.append([])
        return out

    @abstractmethod
    def render(self, request: Any, on_progress: ProgressCallback | None = None,
               images: dict[str, Image.Image] | None = None) -> list[GeneratedImage]:
        """The images of one request."""

    def parameters(self, request: Any) -> dict:
        """What every image of `request` carries in its PNG: the request less its seeds, and the
        model and operation that rendered it."""
        return request.model_dump(exclude={"seed", "num_images"}) | {"model": self.model, "operation": self.operation}


class NothingMatched(ValueError):
    """A search found nothing to edit in the image (its mask is empty)."""


def batch_progress(jobs: Sequence[Job]) -> ProgressCallback:
    """One progress callback for jobs rendered in one model call: each job's own callback, until
    it asks to stop (it is then marked `stopped` and no longer called); the call stops when no
    job is left."""

    def on_step(step: int, total: int) -> bool:
        live = False
        for job in jobs:
            if job.stopped:
                continue
            if job.on_progress is not None and job.on_progress(step, total) is False:
                job.stopped = True
            else:
                live = True
        return live

    return on_step
