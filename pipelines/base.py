"""What every renderq pipeline returns and how it reports progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from PIL import Image

# Called after every denoising step with (steps done, steps in all). Returning False asks
# the pipeline to stop at once; it then raises `RenderInterrupted`.
ProgressCallback = Callable[[int, int], "bool | None"]


# Called with (step, steps in all, a preview of the job's first image) on a preview step.
PreviewCallback = Callable[[int, int, Image.Image], None]


class StepReport:
    """A job's step callback that also takes live previews (pipelines/previews.py): called as
    its ProgressCallback after every step; a diffusion call asks `preview_rows` which rows of its
    latents to decode after a step (every `every` steps, never the last: the image itself comes
    then) and hands the pictures to `preview`, in that order. A pipeline that cannot preview just
    calls it. `decoder`: a tiny autoencoder to decode with instead of the linear map."""

    def __init__(self, on_progress: ProgressCallback | None, on_preview: PreviewCallback | None = None,
                 every: int = 0, decoder: Any = None) -> None:
        self.on_progress, self.on_preview, self.every, self.decoder = on_progress, on_preview, every, decoder

    def __call__(self, step: int, total: int) -> bool | None:
        return self.on_progress(step, total) if self.on_progress is not None else None

    def due(self, step: int, total: int) -> bool:
        return self.on_preview is not None and self.every > 0 and step % self.every == 0 and step < total

    def preview_rows(self, step: int, total: int) -> list[int]:
        return [0] if self.due(step, total) else []

    def preview(self, step: int, total: int, images: list[Image.Image | None]) -> None:
        if images and images[0] is not None:
            self.on_preview(step, total, images[0])


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


class BatchSteps(StepReport):
    """The step callback of jobs rendered in one model call: each job's own callback, until it
    asks to stop (it is then marked `stopped` and no longer called; the call stops when no job is
    left), and each live job's previews from its own first latent row."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        reports = [job.on_progress for job in jobs if isinstance(job.on_progress, StepReport)]
        super().__init__(None, decoder=reports[0].decoder if reports else None)
        self.jobs = jobs
        self._wanting: list[Job] = []

    def __call__(self, step: int, total: int) -> bool:
        live = False
        for job in self.jobs:
            if job.stopped:
                continue
            if job.on_progress is not None and job.on_progress(step, total) is False:
                job.stopped = True
            else:
                live = True
        return live

    def preview_rows(self, step: int, total: int) -> list[int]:
        rows, row = [], 0  # each wanting job's first image's row in the call's latents
        self._wanting = []
        for job in self.jobs:
            if not job.stopped and isinstance(job.on_progress, StepReport) and job.on_progress.due(step, total):
                self._wanting.append(job)
                rows.append(row)
            row += job.request.num_images
        return rows

    def preview(self, step: int, total: int, images: list[Image.Image | None]) -> None:
        for job, image in zip(self._wanting, images):
            job.on_progress.preview(step, total, [image])


def batch_progress(jobs: Sequence[Job]) -> BatchSteps:
    """One step callback for jobs rendered in one model call (BatchSteps)."""
    return BatchSteps(jobs)
