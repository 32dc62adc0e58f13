"""Finishing rendered runs: each run on its own, stored and completed, or canceled, or failed,
with its timings, metrics and the render rate that estimates assume. Torch-free and picklable
at its edge (`Rendered`), because it runs in the finisher process (worker/finishers.py) while
the render process renders the next runs."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

from core.logs import request_id_var, run_id_var
from core.metrics import record_completed_run
from pipelines.base import GeneratedImage
from pipelines.png import encode_png
from pipelines.request_parts import RenderRequest
from storage.assets import Asset, generated_asset_id
from storage.destinations import OutputTarget
from storage.image_codec import THUMBNAIL_SIDE, thumbnail
from storage.records import RunRecord, StoredImage

from .failures import problem_for
from .runtime import Runtime

log = logging.getLogger(__name__)
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}  # of the image objects a run stores
# An image no larger than a thumbnail whose file is at most this big is its own thumbnail.
OWN_THUMBNAIL_BYTES = 32 * 1024


@dataclass
class Rendered:
    """A run whose model call is over, as handed to a finisher: what it needs and nothing live
    (no client, no callback), so it pickles to the finisher process."""

    record: RunRecord
    request: RenderRequest
    images: list[GeneratedImage]
    stopped: bool  # its progress callback saw a cancel request
    clock: tuple[float, float, float]  # started, model ready, model call over (perf_counter)
    batch_size: int  # runs rendered in its model call
    outcome: str = ""  # completed, canceled, failed, superseded
    free_since: float = 0.0  # epoch: when the render process was last free before taking it (its model call before ended)


def finish_rendered(runtime: Runtime, rendered: list[Rendered]) -> None:
    """Finish every run of one model call, then record the call's render rate."""
    for item in rendered:
        with logging_as(item.record):
            _store_and_complete(runtime, item)
    _record_render_rate(runtime, [item for item in rendered if item.outcome == "completed"])


@contextmanager
def logging_as(record: RunRecord):
    """Log lines carry this run's id and request id (one thread finishes several runs)."""
    run_token, request_token = run_id_var.set(record.run_id), request_id_var.set(record.request_id)
    try:
        yield
    finally:
        run_id_var.reset(run_token)
        request_id_var.reset(request_token)


def fail_run(runtime: Runtime, record: RunRecord, exc: BaseException) -> None:
    with logging_as(record):
        log.error("run %s failed", record.run_id, exc_info=exc)
    runtime.runs.fail(record.run_id, record.attempt, problem_for(exc, runtime.settings.soft_time_limit))


def _store_and_complete(runtime: Runtime, item: Rendered) -> None:
    record, runs = item.record, runtime.runs
    if item.stopped:
        log.info("run %s canceled at a denoising step", record.run_id)
        runs.stopped(record.run_id, record.attempt)
        item.outcome = "canceled"
        return
    try:
        stored = store_images(runtime, record, item.images, runtime.output_target(record))
    except Exception as exc:
        fail_run(runtime, record, exc)
        item.outcome = "failed"
        return
    timings = _timings(item, time.perf_counter())
    if not runs.complete(record.run_id, record.attempt, stored, timings, record):
        log.warning("run %s attempt %d finished after losing ownership; result dropped", record.run_id, record.attempt)
        item.outcome = "superseded"
        return
    item.outcome = "completed"
    log.info("run %s completed in %.2fs", record.run_id, timings["total_seconds"], extra={"timings": timings})
    _record_metrics(runtime, record.operation, timings, item.request.steps())


def _timings(item: Rendered, stored: float) -> dict[str, float]:
    """The run's stages. Runs rendered together share `load_seconds` and `inference_seconds`
    (the one model call's wall time, for all of them: `batch_size` says how many).
    perf_counter is system-wide on Linux (CLOCK_MONOTONIC), so the finisher process's clock
    continues the render process's."""
    started, ready, rendered = item.clock
    record = item.record
    return {
        "queue_seconds": round((record.started_at or time.time()) - record.created_at, 4),
        # From "the run is queued and this render process is free" to its start: the service's own
        # latency in queue_seconds, the rest of which is waiting for the runs before it.
        "pickup_seconds": round(max(0.0, (record.started_at or time.time()) - max(record.created_at, item.free_since)), 4),
        "load_seconds": round(ready - started, 4),
        "inference_seconds": round(rendered - ready, 4),
        "upload_seconds": round(stored - rendered, 4),
        "total_seconds": round(stored - started, 4),
        "batch_size": item.batch_size,
    }


def _record_render_rate(runtime: Runtime, completed: list[Rendered]) -> None:
    """After completing (the callers' waits end first): the measured seconds per unit of work
    (denoising steps × output megapixels) that estimated_time assumes, from text-to-image only
    (full steps, no input image)."""
    if not completed or completed[0].record.operation != "text-to-image":
        return
    units = sum(
        (item.request.steps() or 1) * sum(image.image.width * image.image.height for image in item.images) / 1e6
        for item in completed
    )
    _, ready, rendered = completed[0].clock
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
        if max(item.image.size) <= THUMBNAIL_SIDE and len(data) <= OWN_THUMBNAIL_BYTES:
            # Already thumbnail-sized and small: a WebP beside it would save a gallery nothing.
            runtime.images.put(key, data, item.content_type)
            described["thumbnail_key"] = key
        else:
            # Its gallery thumbnail is uploaded at the same time (this process has threads to spare).
            thumbnail_key = runtime.uploads.submit(_store_thumbnail, runtime, f"{record.run_id}/{index}.thumb.webp", item)
            runtime.images.put(key, data, item.content_type)
            described["thumbnail_key"] = thumbnail_key.result()
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
    hand, by the finisher: the API never decodes an image. Its key, or None when it could not be
    written (the run does not fail for it: the thumbnail URL is then absent)."""
    try:
        runtime.images.put(key, thumbnail(item.image), "image/webp")
    except Exception:
        log.warning("could not store the thumbnail %s", key, exc_info=True)
        return None
    return key


def _record_metrics(runtime: Runtime, operation: str, timings: dict[str, float], steps: int) -> None:
    """Histograms for /metrics (core/metrics.py); never fails a finished run."""
    try:
        record_completed_run(runtime.runs.redis, operation, timings, steps)
    except Exception:
        log.warning("could not record metrics", exc_info=True)
