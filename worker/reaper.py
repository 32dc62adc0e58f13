"""Takes back runs whose worker died: promptly, without waiting out the broker's timeout.

Every worker runs one reaper thread (in the Celery parent process, which holds no model).
Each tick (a third of `heartbeat_stale_after`), whichever reaper gets there first:

- **Claimed runs whose worker fell silent.** A render beats on `renderq:heartbeats` every
  second; a run whose beat is older than `heartbeat_stale_after` goes back to `queued` with the
  next attempt number, and its new message goes to the head of its priority's queue (it is
  the oldest run there, where `queue_position` counts it). The Lua script in
  storage/run_scripts.py lets exactly one reaper take each run, and the attempt number makes
  the dead worker's own message a no-op.
- **Messages taken but never started.** A worker killed after taking a message off the queue
  and before its render process claimed the run (or whose render process died first) leaves
  the message in kombu's unacknowledged set, where kombu would hand it back only after the
  visibility timeout. Render messages held longer than `heartbeat_stale_after` whose run is
  still queued at their attempt go back to the head of their queue; exactly one reaper moves
  each (storage/held_messages.py).
- **Queued runs whose message is nowhere** (a parent killed between taking a message off the
  queue and kombu's record of it; a reaper killed between taking a run back and sending its
  new message): once a run whose turn has come has been missing from the head of its queue
  and from the held messages for `heartbeat_stale_after`, one reaper sends it a new message at
  the head (storage/lost_messages.py).
- **Status changes nobody announced.** A process that dies between a status change and its
  announcement (events, queue indexes, webhook, batch count) leaves the change marked; a
  reaper announces it once it is older than the stale window (storage/run_events.py).
- Queued runs past their start deadline expire; credits reserved for runs that will never
  settle them are given back (storage/runs.py `release_orphaned_credits`); now and then,
  expired runs leave the queue indexes and fair share's admitted runs (storage/fair_share.py
  `repair_op`), and expired image files are swept.
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import Celery

from core.metrics import worker_seen
from core.queue import enqueue_render, render_message, render_queues
from core.sentinel import is_redis_url
from core.settings import Settings
from storage import fair_share
from storage.held_messages import HeldMessages
from storage.lost_messages import LostMessages
from storage.redis_client import is_redis_outage, redis_for
from storage.redis_ops import run
from storage.runs import RunStore

from .runtime import Runtime

log = logging.getLogger(__name__)
SWEEP_EVERY = 600  # ticks between sweeps of expired image files
PRUNE_EVERY = 60  # ticks between prunes of expired runs from the queue indexes


def reap_once(
    app: Celery | None, runs: RunStore, settings: Settings, held: HeldMessages | None = None,
    lost: LostMessages | None = None,
) -> list[tuple[str, int]]:
    taken = runs.reap_stale(settings.heartbeat_stale_after, settings.max_attempts)
    for run_id, attempt in taken:
        log.warning("run %s: worker fell silent; re-enqueued as attempt %d", run_id, attempt)
        record = runs.get(run_id)
        requeue_first(app, held.broker if held is not None else None, run_id, attempt,
                      record.priority.value if record else "normal", record.pool if record else None)
    if held is not None:
        give_back_held(held, settings)
    if lost is not None and app is not None:
        resend_lost(app, lost, settings)
    for mark in runs.events.announce_overdue(settings.heartbeat_stale_after):
        log.warning("run %s: status change announced by the reaper (its maker died first)", mark.split("|", 1)[0])
    for run_id in runs.expire_overdue():  # queued past their start deadline
        log.info("run %s: still queued at its start deadline; expired", run_id)
    for run_id in runs.release_orphaned_credits():
        log.warning("run %s: credits still reserved with no run left to settle them; given back", run_id)
    return taken


def requeue_first(app: Celery | None, broker: redis.Redis | None, run_id: str, attempt: int, priority: str,
                  pool: str | None = None) -> None:
    """A new message for the run at the head of its pool's and priority's queue (the next one
    taken), as kombu's restore does; at the tail through Celery when the broker is not Redis."""
    message = render_message(app, run_id, attempt, priority, pool) if app is not None and broker is not None else None
    if message is None:
        enqueue_render(app, run_id, attempt, priority, pool)
        return
    key, payload = message
    broker.rpush(key, payload)


def give_back_held(held: HeldMessages, settings: Settings) -> None:
    for given in held.give_back(settings.heartbeat_stale_after):
        if given.restored:
            log.warning(
                "run %s: its message (attempt %d) was taken %.1fs ago by a worker that never started it; "
                "back at the head of its queue", given.run_id, given.attempt, given.held_seconds,
                extra={"held_seconds": given.held_seconds, "stray_run_id": given.run_id},
            )
        else:
            log.debug("run %s: dropped the held message of attempt %d (claimed, or past it)", given.run_id, given.attempt)


def resend_lost(app: Celery, lost: LostMessages, settings: Settings) -> None:
    def message_for(run_id: str, attempt: int, priority: str, pool: str) -> tuple[str, str] | None:
        return render_message(app, run_id, attempt, priority, pool)

    for run_id, attempt in lost.resend(settings.heartbeat_stale_after, message_for):
        log.warning("run %s: queued with its message nowhere (lost with a worker); sent again (attempt %d) "
                    "at the head of its queue", run_id, attempt, extra={"resent_run_id": run_id})


def held_messages(app: Celery, runs: RunStore, settings: Settings) -> HeldMessages | None:
    """The broker's held messages, when the broker is Redis (else kombu keeps no such set)."""
    url = settings.effective_broker_url
    if not is_redis_url(url):
        return None
    broker = runs.redis if url == settings.redis_url else redis_for(url, decode_responses=True)
    return HeldMessages(broker, runs.redis, dict(app.conf.broker_transport_options or {}))


def sweep_expired_files(runtime: Runtime) -> None:
    sweep = getattr(runtime.images, "sweep", None)  # local disk only; S3 has its lifecycle rule
    if sweep is not None:
        removed = sweep(runtime.settings.retention_seconds)
        if removed:
            log.info("swept %d expired image files", removed)


class Reaper(threading.Thread):
    """Each tick stands alone: a Redis or storage outage costs a tick, never the thread."""

    def __init__(self, app: Celery, runtime: Runtime, renders: bool = True, warmed_apart: bool = False) -> None:
        super().__init__(name="renderq-reaper", daemon=True)
        self.app, self.runtime = app, runtime
        self.renders = renders  # a render worker of its pool (else webhooks only)
        # Its model warms in a render process of its own (prefork), which lists the worker
        # among its pool's once warm (worker/tasks.py); until then it takes no run, so it
        # does not count as one of the pool's workers.
        self.warmed_apart = warmed_apart
        self.stopped = threading.Event()
        self.held = held_messages(app, runtime.runs, runtime.settings)
        self.lost = LostMessages(self.held) if self.held is not None else None

    def run(self) -> None:
        settings = self.runtime.settings
        interval = max(0.5, settings.heartbeat_stale_after / 3)
        ticks = 0
        self._seen()  # counted at once (among its pool's workers once its render process is warm)
        while not self.stopped.wait(interval):
            ticks += 1
            try:
                self._seen()
                reap_once(self.app, self.runtime.runs, settings, self.held, self.lost)
                if ticks % PRUNE_EVERY == 1:
                    self.runtime.runs.index.prune_expired()
                    lists = [queue for pool in self.runtime.runs.index.pools() for queue in render_queues(pool).values()]
                    run(self.runtime.runs.redis, fair_share.repair_op(lists, settings.fair_share_slots))
                if ticks % SWEEP_EVERY == 1:
                    sweep_expired_files(self.runtime)
            except Exception as exc:
                if not is_redis_outage(exc):
                    log.exception("reaper tick failed; trying again")
                else:  # Redis restarting, or failing over to a new primary: the next tick reaps
                    log.warning("reaper tick skipped, Redis unreachable: %s: %s", type(exc).__name__, exc)

    def _seen(self) -> None:
        """Counted in /metrics (renderq_workers) and, a render worker, among its pool's in /v1/health."""
        try:
            worker_seen(self.runtime.runs.redis, self.runtime.worker_id,
                        self.runtime.settings.worker_pool if self.renders else None, listed_only=self.warmed_apart)
        except redis.RedisError:
            log.warning("could not report this worker alive; trying again next tick")

    def stop(self) -> None:
        self.stopped.set()
