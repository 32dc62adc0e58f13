"""The render task: claim the run, render, store the PNGs, record the outcome."""

from __future__ import annotations

import logging
import time

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from pipelines.base import GeneratedImage, Job, NothingMatched, OutputTooLarge, RenderInterrupted
from pipelines.png import encode_png
from pipelines.registry import OPERATIONS
from pipelines.request_parts import RenderRequest
from storage.assets import Asset, generated_asset_id
from storage.destinations import DestinationFailed, OutputTarget
from storage.image_store import StorageUnavailable
from core.logs import request_id_var, run_id_var
from core.metrics import record_completed_run
from core.problems import Problem
from storage.records import RunRecord, StoredImage
from storage.runs import ProgressThrottle

from core.queue import RENDER_TASK

from .celery_app import app
from .heartbeat import Heartbeat
from core.queue import REQUEST_ID_HEADER
from .reaper import Reaper
from .runtime import InputMissing, ModelUnavailable, Runtime, get_runtime

log = logging.getLogger(__name__)
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}  # of the image objects a run stores


# What a failed render records, by what raised: the first entry the exception is an instance of.
FAILURES: tuple[tuple[tuple[type[BaseException], ...], str, int], ...] = (
    ((StorageUnavailable,), "storage-failed", 503),
    ((DestinationFailed,), "destination-failed", 502),
    ((ModelUnavailable,), "model-unavailable", 422),
    ((OutputTooLarge,), "output-too-large", 422),
    ((InputMissing,), "unknown-asset", 422),
    ((NothingMatched,), "nothing-matched", 422),
)


def problem_for(exc: BaseException, soft_time_limit: int) -> Problem:
    """The problem document a failed render records (core/problems.py types)."""
    import torch

    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return Problem.of("render-timeout", 504, detail=f"render exceeded its time limit of {soft_time_limit}s")
    if isinstance(exc, torch.OutOfMemoryError):
        return Problem.of("out-of-memory", 507, detail=str(exc).splitlines()[0])
    for types, slug, status in FAILURES:
        if isinstance(exc, types):
            return Problem.of(slug, status, detail=str(exc))
    return Problem.of("render-failed", 500, detail=f"{type(exc).__name__}: {exc}")


def render_run(runtime: Runtime, run_id: str, attempt: int) -> str:
    """Render one delivery of a run. Returns what happened ('completed', 'failed', or why the
    delivery was skipped). Never leaves a claimed run in `running`."""
    settings = runtime.settings
    outcome = runtime.runs.claim(run_id, attempt, runtime.worker_id, settings.heartbeat_stale_after)
    if outcome != "claimed":
        log.info("run %s attempt %d skipped: %s", run_id, attempt, outcome)
        return outcome
    record = runtime.runs.get(run_id)
    if request_id_var.get() is None and record.request_id:  # re-enqueued by a reaper
        request_id_var.set(record.request_id)
    log.info("run %s attempt %d claimed", run_id, attempt)
    clock = [time.perf_counter()]  # started, loaded, rendered, stored
    with Heartbeat(runtime.runs, run_id, settings.heartbeat_interval):
        try:
            operation = OPERATIONS[record.operation]
            request = operation.request.model_validate(record.request)  # typed at submit, read back
            target = runtime.output_target(record)  # checked before rendering: a gone destination fails fast
            generated = render_images(runtime, record, request, clock)
            stored = store_images(runtime, record, generated, target)
            clock.append(time.perf_counter())
        except RenderInterrupted:  # the progress callback saw a cancel request
            log.info("run %s canceled at a denoising step", run_id)
            runtime.runs.stopped(run_id, attempt)
            return "canceled"
        except Exception as exc:  # SoftTimeLimitExceeded included
            log.exception("run %s failed", run_id)
            runtime.runs.fail(run_id, attempt, problem_for(exc, settings.soft_time_limit))
            return "failed"
    started, loaded, rendered, finished = clock
    timings = {
        "queue_seconds": round((record.started_at or time.time()) - record.created_at, 4),
        "load_seconds": round(loaded - started, 4),
        "inference_seconds": round(rendered - loaded, 4),
        "upload_seconds": round(finished - rendered, 4),
        "total_seconds": round(finished - started, 4),
    }
    if not runtime.runs.complete(run_id, attempt, stored, timings):
        log.warning("run %s attempt %d finished after losing ownership; result dropped", run_id, attempt)
        return "superseded"
    # After completing: the caller's wait ends first; the estimate can be a moment late.
    # Work done: denoising steps × output megapixels (one "step" for model-free operations).
    pixels = sum(item.image.width * item.image.height for item in generated)
    units = (request.steps() or 1) * pixels / 1e6
    if record.operation == "text-to-image":  # the rate estimate_seconds assumes: full steps, no input
        runtime.runs.record_render_rate((rendered - loaded) / max(units, 1e-6))
    log.info("run %s completed in %.2fs", run_id, timings["total_seconds"], extra={"timings": timings})
    _record_metrics(runtime, record.operation, timings, request.steps())
    return "completed"


def render_images(runtime: Runtime, record: RunRecord, request: RenderRequest, clock: list[float]) -> list[GeneratedImage]:
    """The run's images: its pipeline (warm, or loaded now), its input images, one job.
    Appends to `clock` when the model is ready and when the images are."""
    operation = OPERATIONS[record.operation]
    pipeline = runtime.pipeline_for(operation, record.model_id, request, record.loras)
    images = runtime.load_inputs(request)
    clock.append(time.perf_counter())
    progress = ProgressThrottle(runtime.runs, record.run_id, runtime.settings.progress_min_interval)
    [generated] = pipeline([Job(request, images, progress)])
    clock.append(time.perf_counter())
    return generated


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
        # Every generated image is an asset too, so it can feed the next request.
        asset = runtime.assets.register(Asset(
            asset_id=generated_asset_id(record.run_id, index), key=key, content_type=item.content_type,
            width=item.image.width, height=item.image.height, bytes=len(data), created_at=time.time(),
            expires_at=record.expires_at, source=record.run_id, tenant=record.tenant,
        ))
        stored.append(StoredImage(key=key, asset_id=asset.asset_id, **described))
    return stored


def _record_metrics(runtime: Runtime, operation: str, timings: dict[str, float], steps: int) -> None:
    """Histograms and GPU memory for /metrics (core/metrics.py); never fails a finished run."""
    try:
        record_completed_run(runtime.runs.redis, operation, timings, steps)
        runtime.record_gpu_memory()
    except Exception:
        log.warning("could not record metrics", exc_info=True)


class RenderTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Runs in the Celery parent when the hard time limit kills the render process.
        if isinstance(exc, TimeLimitExceeded) and len(args) == 2:
            runtime = get_runtime()
            runtime.runs.fail(args[0], args[1], problem_for(exc, runtime.settings.hard_time_limit))


@app.task(name=RENDER_TASK, base=RenderTask)
def render(run_id: str, attempt: int) -> str:
    # Every log line of this render carries the run id and the submit's X-Request-ID.
    run_token = run_id_var.set(run_id)
    request_token = request_id_var.set(render.request.get(REQUEST_ID_HEADER))
    log.info("run %s attempt %d received", run_id, attempt)
    try:
        return render_run(get_runtime(), run_id, attempt)
    finally:
        run_id_var.reset(run_token)
        request_id_var.reset(request_token)


@worker_process_init.connect
def _warm_render_process(**_):
    # After the fork: the model (and CUDA) belong to the process that renders.
    get_runtime().warm()


_reaper: Reaper | None = None


@worker_ready.connect
def _start_reaper(sender=None, **_):
    global _reaper
    _reaper = Reaper(sender.app if sender is not None else app, get_runtime())
    _reaper.start()


@worker_shutdown.connect
def _stop_reaper(**_):
    if _reaper is not None:
        _reaper.stop()
