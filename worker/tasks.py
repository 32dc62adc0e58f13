"""The render task: claim the run (and the queued runs that can render with it), hand them to
worker/render.py, and the Celery wiring of the render processes (warm-up, reaper)."""

from __future__ import annotations

import logging
import os

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from core.logs import request_id_var, run_id_var
from core.metrics import worker_gone
from core.queue import RENDER_TASK, REQUEST_ID_HEADER, is_render_queue

from .celery_app import app
from .failures import problem_for
from .reaper import Reaper
from .render import Finisher, render_together
from .runtime import Runtime, get_runtime

log = logging.getLogger(__name__)


def render_run(runtime: Runtime, run_id: str, attempt: int) -> str:
    """Render one delivery of a run, with the runs of its render group that are queued now (up to
    RENDERQ_MAX_BATCH in all; never waiting for more), and hand them to this process's finisher
    to be stored while the next delivery renders. Returns 'rendered', or why the delivery was
    skipped (the run's outcome is in its record)."""
    settings = runtime.settings
    outcome = runtime.runs.claim(run_id, attempt, runtime.worker_id, settings.heartbeat_stale_after)
    if outcome != "claimed":
        log.info("run %s attempt %d skipped: %s", run_id, attempt, outcome)
        return outcome
    record = runtime.runs.get(run_id)
    if request_id_var.get() is None and record.request_id:  # re-enqueued by a reaper
        request_id_var.set(record.request_id)
    if settings.worker_pool and record.pool != runtime.pool:  # only a pool's own queues reach its workers
        log.warning("run %s of pool %s rendered by a worker of pool %s", run_id, record.pool, runtime.pool)
    records = [record]
    if record.render_group and settings.max_batch > 1:
        records += runtime.runs.claim_companions(record, runtime.worker_id, settings.heartbeat_stale_after,
                                                 settings.max_batch - 1)
    log.info("run %s attempt %d claimed%s", run_id, attempt,
             f" with {len(records) - 1} more of its render group: {[r.run_id for r in records[1:]]}" if len(records) > 1 else "")
    render_together(runtime, records, finisher())
    return "rendered"


_finisher: Finisher | None = None


def finisher() -> Finisher:
    """This render process's finisher (a forked child starts its own)."""
    global _finisher
    if _finisher is None or _finisher.pid != os.getpid():
        _finisher = Finisher()
    return _finisher


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
    celery_app = sender.app if sender is not None else app
    # A webhook-only worker reaps too, but is no render worker of any pool.
    consumed = getattr(celery_app.amqp.queues, "consume_from", None) or {}
    _reaper = Reaper(celery_app, get_runtime(), renders=any(is_render_queue(queue) for queue in consumed))
    _reaper.start()


@worker_shutdown.connect
def _stop_reaper(**_):
    if _reaper is not None:
        _reaper.stop()
        try:  # no longer counted among its pool's workers (/v1/health)
            if _reaper.renders:
                    worker_gone(_reaper.runtime.runs.redis, _reaper.runtime.worker_id, _reaper.runtime.settings.worker_pool)
        except Exception:
            log.warning("could not take this worker off its pool's list; it drops off when unseen")
    _finish_rendered_runs()  # the solo pool (renderq dev) renders in this process


@worker_process_shutdown.connect
def _finish_rendered_runs(**_):
    # A warm shutdown lets the runs rendered last be stored before the process goes.
    if _finisher is not None and _finisher.pid == os.getpid():
        _finisher.drain()
