"""Rendering claimed runs: one model call for the runs a worker took together (one run, or a
batch of runs from one render group), then each run handed to the finisher (worker/finishers.py)
to be stored and completed, canceled, or failed while the next call renders. Every per-run
behaviour (progress, cancel, charge, webhook, timings) stays per run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pipelines.base import GeneratedImage, Job
from pipelines.registry import OPERATIONS
from pipelines.request_parts import RenderRequest
from storage.records import RunRecord
from storage.runs import ProgressThrottle

from .finishers import Finisher
from .finishing import Rendered, fail_run, finish_rendered
from .heartbeat import Heartbeat
from .previews import step_report
from .runtime import Runtime

log = logging.getLogger(__name__)

# When this render process last ended a model call (epoch): free since then for the next run.
_FREE_SINCE = [0.0]


@dataclass
class Delivery:
    """A claimed run in this worker's hands."""

    record: RunRecord
    request: RenderRequest | None = None
    job: Job | None = None
    clock: list[float] = field(default_factory=list)  # started, ready, rendered
    batch_size: int = 1  # runs rendered in its model call


def render_together(runtime: Runtime, records: list[RunRecord], finisher: Finisher | None = None) -> None:
    """Render claimed runs of one operation and model in one pipeline call, then hand them to
    `finisher` (or finish them here when None), so the next render starts meanwhile. Never
    leaves a claimed run in `running` while this process lives (and a reaper takes back those of
    a process that dies). What is one run's own (its input images, its output destination,
    storing its images) fails that run alone."""
    started, free_since = time.perf_counter(), _FREE_SINCE[0]
    deliveries = [Delivery(record, clock=[started]) for record in records]
    heartbeat = Heartbeat(runtime.runs, [record.run_id for record in records], runtime.settings.heartbeat_interval)
    heartbeat.start()  # until its finisher has finished the last run of them
    handed_over = False
    try:
        live = [d for d in deliveries if _prepare(runtime, d)]
        try:
            generated = render_images(runtime, live) if live else []
        except Exception as exc:  # the model call failed: every run of it (SoftTimeLimitExceeded included)
            for delivery in live:
                fail_run(runtime, delivery.record, exc)
            return
        finally:
            _FREE_SINCE[0] = time.time()
        rendered = [Rendered(d.record, d.request, images, d.job.stopped, tuple(d.clock), d.batch_size, free_since=free_since)
                    for d, images in zip(live, generated)]
        if finisher is not None and rendered:
            finisher.submit(rendered, heartbeat.stop)
            handed_over = True
        else:
            finish_rendered(runtime, rendered)
    finally:
        # Whatever escaped (Redis gone while failing a run, say), the runs stop looking alive,
        # so the reaper re-enqueues the ones still running.
        if not handed_over:
            heartbeat.stop()


def _prepare(runtime: Runtime, delivery: Delivery) -> bool:
    """The run's typed request, its output destination (checked before rendering: a gone one
    fails fast), its input images and progress; False when it failed."""
    record = delivery.record
    try:
        delivery.request = OPERATIONS[record.operation].request.model_validate(record.request)  # typed at submit
        runtime.output_target(record)
        images = runtime.load_inputs(delivery.request)
    except Exception as exc:
        fail_run(runtime, record, exc)
        return False
    progress = ProgressThrottle(runtime.runs, record.run_id, runtime.settings.progress_min_interval)
    delivery.job = Job(delivery.request, images, step_report(runtime.runs, record, progress, runtime.settings.preview_every_steps,
                                                             lambda: _preview_decoder(runtime, record)))
    return True


def _preview_decoder(runtime: Runtime, record: RunRecord):
    """The tiny autoencoder that decodes a diffusion run's previews, if the catalog has one for its base."""
    return runtime.preview_decoder(record.model_id) if OPERATIONS[record.operation].model_kind == "base" else None


def _cut_out_backgrounds(runtime: Runtime, deliveries: list[Delivery], generated: list[list[GeneratedImage]]) -> None:
    """`background: transparent` (text-to-image): each rendered image cut out by the catalog's
    first background-removal model (checked at submit), as POST /v1/remove-background would."""
    wanted = [images for delivery, images in zip(deliveries, generated)
              if getattr(delivery.request, "background", None) == "transparent"]
    if not wanted:
        return
    remover = runtime.pipeline_for(OPERATIONS["remove-background"], "")
    for images in wanted:
        for item in images:
            if item.role == "image":
                item.image = remover.cut_out(item.image)


def render_images(runtime: Runtime, deliveries: list[Delivery]) -> list[list[GeneratedImage]]:
    """One pipeline call (warm, or loaded now) for the runs' jobs; each run's images."""
    first = deliveries[0]
    operation = OPERATIONS[first.record.operation]
    pipeline = runtime.pipeline_for(operation, first.record.model_id, first.request, first.record.loras)
    ready = time.perf_counter()
    generated = pipeline([d.job for d in deliveries])
    _cut_out_backgrounds(runtime, deliveries, generated)
    rendered = time.perf_counter()
    for delivery in deliveries:
        delivery.clock += [ready, rendered]
        delivery.batch_size = len(deliveries)
    try:
        runtime.record_gpu_memory()  # of this process, for /metrics
    except Exception:
        log.warning("could not record GPU memory", exc_info=True)
    return generated
