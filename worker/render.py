"""Rendering claimed runs: one model call for the runs a worker took together (one run, or a
batch of runs from one render group), then each run on its own: stored and completed, canceled,
or failed. Every per-run behaviour (progress, cancel, charge, webhook, timings) stays per run."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

from core.logs import request_id_var, run_id_var
from core.metrics import record_completed_run
from pipelines.base import GeneratedImage, Job
from pipelines.png import encode_png
from pipelines.registry import OPERATIONS
from pipelines.request_parts import RenderRequest
from storage.assets import Asset, generated_asset_id
from storage.destinations import OutputTarget
from storage.image_codec import thumbnail
from storage.records import RunRecord, StoredImage
from storage.runs import ProgressThrottle

from .failures import problem_for
from .heartbeat import Heartbeat
from .previews import step_report
from .runtime import Runtime

log = logging.getLogger(__name__)
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}  # of the image objects a run stores


@dataclass
class Delivery:
    """A claimed run in this worker's hands."""

    record: RunRecord
    request: RenderRequest | None = None
    target: OutputTarget | None = None  # the tenant's own bucket, when the request named an `output`
    job: Job | None = None
    outcome: str = ""  # completed, canceled, failed, superseded; "" while rendering
    clock: list[float] = field(default_factory=list)  # started, ready, rendered, stored
    batch_size: int = 1  # runs rendered in its model call


def render_together(runtime: Runtime, records: list[RunRecord], finisher: "Finisher | None" = None) -> None:
    """Render claimed runs of one operation and model in one pipeline call, then store and finish
    each on its own: on `finisher`'s thread when given, so the next render starts meanwhile. Never
    leaves a claimed run in `running` while this process lives (and a reaper takes back those of
    a process that dies). What is one run's own (its input images, its output destination,
    storing its images) fails that run alone."""
    started = time.perf_counter()
    deliveries = [Delivery(record, clock=[started]) for record in records]
    heartbeat = Heartbeat(runtime.runs, [record.run_id for record in records], runtime.settings.heartbeat_interval)
    heartbeat.start()  # until the last run of them is finished, on whichever thread finishes them
    handed_over = False
    try:
        live = [d for d in deliveries if _prepare(runtime, d)]
        try:
            generated = render_images(runtime, live) if live else []
        except Exception as exc:  # the model call failed: every run of it (SoftTimeLimitExceeded included)
            for delivery in live:
                _fail(runtime, delivery, exc)
            return

        def finish() -> None:
            try:
                for delivery, images in zip(live, generated):
                    _finish(runtime, delivery, images)
            finally:
                heartbeat.stop()
            _record_render_rate(runtime, [(d, images) for d, images in zip(live, generated) if d.outcome == "completed"])

        if finisher is not None:
            finisher.submit(finish)
            handed_over = True
        else:
            finish()
    finally:
        # Whatever escaped (Redis gone while failing a run, say), the runs stop looking alive,
        # so the reaper re-enqueues the ones still running.
        if not handed_over:
            heartbeat.stop()


class Finisher:
    """The render process's second hand: stores and finishes rendered runs (encode, upload,
    asset and run records, webhooks) while the main thread renders the next ones. Bounded: it
    holds one render's runs waiting at most, so a render that ends while two are still queued
    here waits. A run handed here stays `running` with its heartbeat until finished; if the
    process dies first, the reaper re-enqueues it, so no run is lost."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._work, name="finisher", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def drain(self) -> None:
        """Wait for everything handed over so far (process shutdown)."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            try:
                work()
            except Exception:  # each run's own failures are recorded by _finish; this is a bug
                log.exception("finishing rendered runs failed")
            finally:
                self._queue.task_done()


def _prepare(runtime: Runtime, delivery: Delivery) -> bool:
    """The run's typed request, its output destination (checked before rendering: a gone one
    fails fast), its input images and progress; False when it failed."""
    record = delivery.record
    try:
        delivery.request = OPERATIONS[record.operation].request.model_validate(record.request)  # typed at submit
        delivery.target = runtime.output_target(record)
        images = runtime.load_inputs(delivery.request)
    except Exception as exc:
        _fail(runtime, delivery, exc)
        return False
    progress = ProgressThrottle(runtime.runs, record.run_id, runtime.settings.progress_min_interval)
    delivery.job = Job(delivery.request, images, step_report(runtime.runs, record, progress, runtime.settings.preview_every_steps))
    return True


def render_images(runtime: Runtime, deliveries: list[Delivery]) -> list[list[GeneratedImage]]:
    """One pipeline call (warm, or loaded now) for the runs' jobs; each run's images."""
    first = deliveries[0]
    operation = OPERATIONS[first.record.operation]
    pipeline = runtime.pipeline_for(operation, first.record.model_id, first.request, first.record.loras)
    ready = time.perf_counter()
    generated = pipeline([d.job for d in deliveries])
    rendered = time.perf_counter()
    for delivery in deliveries:
        delivery.clock += [ready, rendered]
        delivery.batch_size = len(deliveries)
    return generated


def _finish(runtime: Runtime, delivery: Delivery, images: list[GeneratedImage]) -> None:
    with _logging_as(delivery.record):
        _store_and_complete(runtime, delivery, images)


@contextmanager
def _logging_as(record: RunRecord):
    """Log lines carry this run's id and request id (one thread finishes several runs)."""
    run_token, request_token = run_id_var.set(record.run_id), request_id_var.set(record.request_id)
    try:
        yield
    finally:
        run_id_var.reset(run_token)
        request_id_var.reset(request_token)


def _store_and_complete(runtime: Runtime, delivery: Delivery, images: list[GeneratedImage]) -> None:
    record, runs = delivery.record, runtime.runs
    if delivery.job.stopped:  # its progress callback saw a cancel request
        log.info("run %s canceled at a denoising step", record.run_id)
        runs.stopped(record.run_id, record.attempt)
        delivery.outcome = "canceled"
        return
    try:
        stored = store_images(runtime, record, images, delivery.target)
    except Exception as exc:
        _fail(runtime, delivery, exc)
        return
    delivery.clock.append(time.perf_counter())
    timings = _timings(delivery)
    if not runs.complete(record.run_id, record.attempt, stored, timings):
        log.warning("run %s attempt %d finished after losing ownership; result dropped", record.run_id, record.attempt)
        delivery.outcome = "superseded"
        return
    delivery.outcome = "completed"
    log.info("run %s completed in %.2fs", record.run_id, timings["total_seconds"], extra={"timings": timings})
    _record_metrics(runtime, record.operation, timings, delivery.request.steps())


def _fail(runtime: Runtime, delivery: Delivery, exc: BaseException) -> None:
    record = delivery.record
    with _logging_as(record):
        log.error("run %s failed", record.run_id, exc_info=exc)
    runtime.runs.fail(record.run_id, record.attempt, problem_for(exc, runtime.settings.soft_time_limit))
    delivery.outcome = "failed"


def _timings(delivery: Delivery) -> dict[str, float]:
    """The run's stages. Runs rendered together share `load_seconds` and `inference_seconds`
    (the one model call's wall time, for all of them: `batch_size` says how many)."""
    started, ready, rendered, stored = delivery.clock
    record = delivery.record
    return {
        "queue_seconds": round((record.started_at or time.time()) - record.created_at, 4),
        "load_seconds": round(ready - started, 4),
        "inference_seconds": round(rendered - ready, 4),
        "upload_seconds": round(stored - rendered, 4),
        "total_seconds": round(stored - started, 4),
        "batch_size": delivery.batch_size,
    }


def _record_render_rate(runtime: Runtime, completed: list[tuple[Delivery, list[GeneratedImage]]]) -> None:
    """After completing (the callers' waits end first): the measured seconds per unit of work
    (denoising steps × output megapixels) that estimated_time assumes, from text-to-image only
    (full steps, no input image)."""
    if not completed or completed[0][0].record.operation != "text-to-image":
        return
    units = sum(
        (d.request.steps() or 1) * sum(item.image.width * item.image.height for item in images) / 1e6
        for d, images in completed
    )
    started, ready, rendered = completed[0][0].clock[:3]
    runtime.runs.record_render_rate((rendered - ready) / max(units, 1e-6))


def store_images(runtime: Runtime, record: RunRecord, generated: list[GeneratedImage], target: OutputTarget | None) -> list[StoredImage]:
    """Encode and write each image: to the tenant's own bucket (`target`) when the request named
    an `output` (no copy, asset or URL of ours, as Claid), else to our store, as an asset too."""
    stored = []
    for index, item in enumerate(generated):
        data = item.encoded if item.encoded is not None else encode_png(item.image, item.parameters)
        key = f"{record.run_id}/{index}.{EXTENSIONS[item.content_type]}"  # fixed per run: a re-render overwrites
        described = dict(width=item.image.width, height=item.image.height, seed=item.seed, content_type=item.content_type,
                         bytes=len(data), role=item.role, **item.labels)
        if target is not None:
            stored.append(StoredImage(**target.put(key, data, item.content_type), **described))
            continue
        runtime.images.put(key, data, item.content_type)
        described["thumbnail_key"] = _store_thumbnail(runtime, f"{record.run_id}/{index}.thumb.webp", item)
        # Every generated image is an asset too, so it can feed the next request.
        asset = runtime.assets.register(Asset(
            asset_id=generated_asset_id(record.run_id, index), key=key, content_type=item.content_type,
            width=item.image.width, height=item.image.height, bytes=len(data), created_at=time.time(),
            expires_at=record.expires_at, source=record.run_id, tenant=record.tenant,
        ))
        stored.append(StoredImage(key=key, asset_id=asset.asset_id, **described))
    return stored


def _store_thumbnail(runtime: Runtime, key: str, item: GeneratedImage) -> str | None:
    """A gallery thumbnail (a WebP of at most 256 px) beside the image, made now, from the image in
    hand, on the finisher's thread: the API never decodes an image. Its key, or None when it could
    not be written (the run does not fail for it: the thumbnail URL is then absent)."""
    try:
        runtime.images.put(key, thumbnail(item.image), "image/webp")
    except Exception:
        log.warning("could not store the thumbnail %s", key, exc_info=True)
        return None
    return key


def _record_metrics(runtime: Runtime, operation: str, timings: dict[str, float], steps: int) -> None:
    """Histograms and GPU memory for /metrics (core/metrics.py); never fails a finished run."""
    try:
        record_completed_run(runtime.runs.redis, operation, timings, steps)
        runtime.record_gpu_memory()
    except Exception:
        log.warning("could not record metrics", exc_info=True)
