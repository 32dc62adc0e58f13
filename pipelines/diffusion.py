"""Running a diffusers pipeline for a request, or for several compatible requests in one call:
per-image seeds, progress, interruption."""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from PIL import Image

from .base import GeneratedImage, Job, ProgressCallback, RenderInterrupted, StepReport, batch_progress
from .previews import decode_previews
from .request_parts import DiffusionRequest

log = logging.getLogger(__name__)


def run_diffusion(
    pipe, request: DiffusionRequest, total_steps: int, on_progress: ProgressCallback | None, **inputs
) -> list[Image.Image]:
    """Call `pipe` with the request's shared fields plus `inputs` (image, mask_image, sizes, …).

    One seeded generator per image, so an image depends only on its own seed. `total_steps`
    is what the pipeline will really run (img2img runs steps × strength)."""
    return _call(
        pipe, request, total_steps, on_progress, prompt=request.prompt,
        negative_prompt=request.negative_prompt or None, num_images_per_prompt=request.num_images,
        generator=_generators(request), **inputs,
    )


def run_diffusion_batch(
    pipe, requests: Sequence[DiffusionRequest], total_steps: int, on_progress: ProgressCallback | None, **inputs
) -> list[list[Image.Image]]:
    """Several requests that share every setting of the model call (steps, guidance, size: their
    `render_key`) in one call: a prompt, a negative prompt and a seeded generator per image, so
    each image depends on its own request and seed only. Returns each request's images."""
    prompts = [request.prompt for request in requests for _ in range(request.num_images)]
    negatives = [request.negative_prompt for request in requests for _ in range(request.num_images)]
    images = _call(
        pipe, requests[0], total_steps, on_progress, prompt=prompts,
        negative_prompt=negatives if any(negatives) else None, num_images_per_prompt=1,
        generator=[generator for request in requests for generator in _generators(request)], **inputs,
    )
    out, start = [], 0
    for request in requests:
        out.append(images[start:start + request.num_images])
        start += request.num_images
    return out


def render_jobs_together(pipeline, jobs: Sequence[Job], keys: Sequence[tuple], total_steps: int,
                         **inputs) -> list[list[GeneratedImage]]:
    """The images of each job rendered in one call by `pipeline` (a Pipeline on a diffusers
    pipeline): the jobs' `render_key`s (`keys`) must be one. A job whose progress asked it to stop
    gets none; the call stops when all have."""
    if len(set(keys)) > 1:
        raise ValueError("jobs rendered together must share their render_key")
    requests = [job.request for job in jobs]
    try:
        batches = run_diffusion_batch(pipeline.pipe, requests, total_steps, batch_progress(jobs), **inputs)
    except RenderInterrupted:  # every job was canceled
        return [[] for _ in jobs]
    return [
        [] if job.stopped else with_seeds([job.request.exact_crop(image) for image in images], job.request,
                                          pipeline.parameters(job.request))
        for job, images in zip(jobs, batches)
    ]


def _generators(request: DiffusionRequest) -> list[torch.Generator]:
    return [torch.Generator(device="cpu").manual_seed(seed) for seed in request.image_seeds()]


def _call(pipe, request: DiffusionRequest, total_steps: int, on_progress: ProgressCallback | None, **arguments):
    # Most diffusers pipelines stop at their `interrupt` flag; one without it (InstructPix2Pix)
    # is stopped by raising from its step callback.
    has_flag = isinstance(getattr(type(pipe), "interrupt", None), property)

    def step_end(pipe, step: int, timestep, kwargs):
        if on_progress is not None and on_progress(step + 1, total_steps) is False:
            if not has_flag:
                raise RenderInterrupted()
            pipe._interrupt = True
        elif isinstance(on_progress, StepReport):
            _preview(pipe, on_progress, step + 1, total_steps, kwargs.get("latents"))
        return kwargs

    with torch.inference_mode():
        result = pipe(
            num_inference_steps=request.num_inference_steps, guidance_scale=request.guidance_scale,
            callback_on_step_end=step_end, **arguments,
        )
    if getattr(pipe, "_interrupt", False):
        pipe._interrupt = False
        raise RenderInterrupted()
    return result.images


def _preview(pipe, report: StepReport, step: int, total_steps: int, latents) -> None:
    """Decode and hand over the previews wanted after this step (only then: other steps cost a
    comparison). A preview that fails to decode is skipped; the render goes on."""
    rows = report.preview_rows(step, total_steps)
    if not rows or latents is None:
        return
    try:
        report.preview(step, total_steps, decode_previews(pipe, latents, rows, report.decoder))
    except Exception:
        log.warning("could not make a preview at step %d", step, exc_info=True)


def steps_run(request: DiffusionRequest, strength: float) -> int:
    """Denoising steps an image-conditioned diffusers pipeline runs for this strength."""
    return min(int(request.num_inference_steps * strength), request.num_inference_steps)


def with_seeds(images: list[Image.Image], request: DiffusionRequest, parameters: dict) -> list[GeneratedImage]:
    return [
        GeneratedImage(image=image, seed=seed, parameters=parameters | {"seed": seed})
        for image, seed in zip(images, request.image_seeds())
    ]
