"""The render task: claim the run (and the queued runs that can render with it), hand them to
worker/render.py, and the Celery wiring of the render processes (warm-up, reaper)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import (
    worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown, worker_shutting_down,
)

from core.logs import request_id_var, run_id_var
from core.metrics import worker_gone, worker_seen
from core.queue import RENDER_TASK, REQUEST_ID_HEADER, is_render_queue, render_queues

from storage.claims import stopping_key

from .celery_app import app
from .failures import problem_for
from .reaper import Reaper
from .finishers import Finisher, make_finisher
from .process_local import ProcessLocal
from .render import render_together
from .runtime import Runtime, get_runtime

log = logging.getLogger(__name__)


def render_run(runtime: Runtime, run_id: str, attempt: int) -> str:
    """Render one delivery of a run, with the runs of its render group that are queued now (up to
    RENDERQ_MAX_BATCH in all; never waiting for more), and hand them to this process's finisher
    to be stored while the next call renders. Then take the run its queue would deliver next
    (with its group's queued runs) and render it too, as long as nothing of a higher priority
    waits, for at most CONTINUE_SECONDS: a backlog drains in the queue's own order without a
    round trip through Celery per model call. Returns 'rendered', or why the delivery was skipped
    (the run's outcome is in its record)."""
    settings = runtime.settings
    began = time.monotonic()
    wanted = settings.max_batch
    outcome, records = runtime.runs.claim_group(run_id, attempt, runtime.worker_id, settings.heartbeat_stale_after, wanted)
    if outcome != "claimed":
        log.info("run %s attempt %d skipped: %s", run_id, attempt, outcome)
        return outcome
    record = records[0]
    if request_id_var.get() is None and record.request_id:  # re-enqueued by a reaper
        request_id_var.set(record.request_id)
    if settings.worker_pool and record.pool != runtime.pool:  # only a pool's own queues reach its workers
        log.warning("run %s of pool %s rendered by a worker of pool %s", run_id, record.pool, runtime.pool)
    log.info("run %s attempt %d claimed%s", run_id, attempt,
             f" with {len(records) - 1} more of its render group: {[r.run_id for r in records[1:]]}" if len(records) > 1 else "")
    render_together(runtime, records, finisher(runtime))
    # Then the runs next in line on its queue, as long as nothing of a higher priority waits.
    queue, higher = render_lists(record.pool, record.priority.value)
    budget = min(CONTINUE_SECONDS, settings.soft_time_limit / 4)
    while time.monotonic() - began < budget:
        records = runtime.runs.claim_next(queue, higher, runtime.worker_id, settings.heartbeat_stale_after, wanted,
                                          stopping_key(_celery_main or _this_process()))
        if not records:
            break
        log.info("runs %s next on %s claimed after run %s", [r.run_id for r in records], queue, run_id)
        render_together(runtime, records, finisher(runtime))
    return "rendered"


# How long one delivery may go on rendering the runs next in line (bounded so that a warm
# shutdown and the time limits stay as they were).
CONTINUE_SECONDS = 5.0


def render_lists(pool: str | None, priority: str) -> tuple[str, list[str]]:
    """(the render list of `pool` and `priority`, the pool's lists of the priorities above it)."""
    lists = render_queues(pool)  # high, normal, low
    order = list(lists)
    return lists[priority], [lists[p] for p in order[:order.index(priority)]]


_finisher: ProcessLocal[Finisher] = ProcessLocal()


def finisher(runtime: Runtime) -> Finisher:
    """This render process's finisher."""
    return _finisher.get(lambda: make_finisher(runtime))


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
    global _celery_main
    _celery_main = f"{socket.gethostname()}:{os.getppid()}"
    # After the fork: the model (and CUDA) belong to the process that renders; its finisher
    # process starts meanwhile (its imports take a second).
    runtime = get_runtime()
    finisher(runtime)
    runtime.warm()
    # Warm: its worker (the Celery parent, whose reaper keeps it listed) is one of its pool's
    # workers from now on (/v1/health, /metrics).
    worker_seen(runtime.runs.redis, _celery_main, runtime.settings.worker_pool)


_reaper: Reaper | None = None


@worker_ready.connect
def _start_reaper(sender=None, **_):
    global _reaper
    celery_app = sender.app if sender is not None else app
    # A webhook-only worker reaps too, but is no render worker of any pool.
    consumed = getattr(celery_app.amqp.queues, "consume_from", None) or {}
    renders = any(is_render_queue(queue) for queue in consumed)
    _reaper = Reaper(celery_app, get_runtime(), renders=renders, warmed_apart=renders)
    _reaper.start()


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# The Celery worker's main process (host:pid) as a prefork render process knows it; None in the
# main process itself (the solo pool of `renderq dev` renders there).
_celery_main: str | None = None


@worker_shutting_down.connect
def _stop_continuing(**_):
    # A render process of this worker takes no run after the one in hand (render_run's loop).
    try:
        get_runtime().runs.redis.set(stopping_key(_this_process()), "1", ex=3600)
    except Exception:
        log.warning("could not mark this worker as stopping; its render process may go on for %ss", CONTINUE_SECONDS)


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


def _finish_rendered_runs(**_):
    # A warm shutdown lets the runs rendered last be stored before the process goes.
    if _finisher.current is not None:
        _finisher.current.drain()


@worker_process_shutdown.connect
def _leave_render_process(exitcode: int = 0, **_):
    """A render process leaving (warm shutdown: its last task done and acknowledged) stores its
    rendered runs, then exits at once. billiard's child would otherwise announce its exit and
    sleep a second for the parent to kill it, and a parent in its warm shutdown reads no such
    announcement: an idle worker took ~1.8 s to stop instead of ~0.7 s (tests/test_scale_down.py)."""
    _finish_rendered_runs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(exitcode or 0)
