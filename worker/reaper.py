"""Re-enqueues runs whose worker died: promptly, without waiting out the broker's timeout.

Every worker runs one reaper thread (in the Celery parent process, which holds no model).
A render beats on `renderq:heartbeats` every second; a run whose beat is older than
`heartbeat_stale_after` goes back to `queued` with the next attempt number and a new message.
The Lua script in storage/run_scripts.py lets exactly one reaper take each run, and the attempt
number makes the dead worker's own message, when kombu redelivers it an hour later, a no-op.
The same tick expires queued runs past their start deadline and gives back the credits
reserved for runs that will never settle them (storage/runs.py `release_orphaned_credits`).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from core.metrics import worker_seen
from storage.runs import RunStore
from core.settings import Settings

from core.queue import enqueue_render
from .runtime import Runtime

log = logging.getLogger(__name__)


def reap_once(app: Celery, runs: RunStore, settings: Settings) -> list[tuple[str, int]]:
    taken = runs.reap_stale(settings.heartbeat_stale_after, settings.max_attempts)
    for run_id, attempt in taken:
        log.warning("run %s: worker fell silent; re-enqueued as attempt %d", run_id, attempt)
        record = runs.get(run_id)
        enqueue_render(app, run_id, attempt, record.priority.value if record else "normal")
    for run_id in runs.expire_overdue():  # queued past their start deadline
        log.info("run %s: still queued at its start deadline; expired", run_id)
    for run_id in runs.release_orphaned_credits():
        log.warning("run %s: credits still reserved with no run left to settle them; given back", run_id)
    return taken


def sweep_expired_files(runtime: Runtime) -> None:
    sweep = getattr(runtime.images, "sweep", None)  # local disk only; S3 has its lifecycle rule
    if sweep is not None:
        removed = sweep(runtime.settings.retention_seconds)
        if removed:
            log.info("swept %d expired image files", removed)


class Reaper(threading.Thread):
    """Each tick stands alone: a Redis or storage outage costs a tick, never the thread."""

    def __init__(self, app: Celery, runtime: Runtime) -> None:
        super().__init__(name="renderq-reaper", daemon=True)
        self.app, self.runtime = app, runtime
        self.stopped = threading.Event()

    def run(self) -> None:
        settings = self.runtime.settings
        interval = max(0.5, settings.heartbeat_stale_after / 3)
        ticks = 0
        while not self.stopped.wait(interval):
            ticks += 1
            try:
                worker_seen(self.runtime.runs.redis, self.runtime.worker_id)  # worker count in /metrics
                reap_once(self.app, self.runtime.runs, settings)
                if ticks % 600 == 1:
                    sweep_expired_files(self.runtime)
            except Exception:
                log.exception("reaper tick failed; trying again")

    def stop(self) -> None:
        self.stopped.set()
