"""Run records in Redis: one hash per run, expiring with the run.

State changes that race (a worker claiming a run, finishing it, a reaper taking back a run
whose worker fell silent) are single Lua scripts (storage/run_scripts.py), so each happens
once, whoever runs it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import redis

from core import tenancy
from .claims import Claims
from .render_groups import RenderGroups, message_key
from .batches import BatchStore
from .credits import HOLD_CHECK_SECONDS, HOLDS
from core.logs import request_id_var
from core.metrics import FAILURES, RUNS
from .prices import PriceTable
from .previews import PreviewStore, preview_key
from core.problems import Problem
from .records import RunRecord, RunStatus, StoredImage, WebhookTarget
from .redis_ops import Batch, Op, run
from .render_stats import RenderStats, record_render, stats_op
from .run_events import RunEvents
from .run_index import RunIndex
from .tombstones import DEFAULT_KEEP_SECONDS, Tombstones
from . import run_scripts
from .webhooks import WebhookStore

RUN_PREFIX = "renderq:run:"
HEARTBEATS = "renderq:heartbeats"
STEP_RATE = "renderq:stats:seconds_per_unit"


def run_key(run_id: str) -> str:
    return RUN_PREFIX + run_id


class RunStore:
    """Reads and writes run records. Every write keeps the record's TTL at its expiry."""

    def __init__(self, client: redis.Redis, retention_seconds: int, tombstone_seconds: int = DEFAULT_KEEP_SECONDS,
                 fair_slots: int = 0) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        self.tombstones = Tombstones(client, retention_seconds, tombstone_seconds)  # expired runs answer 410, not 404
        # Runs each tenant may have admitted to a list at once (storage/fair_share.py); 0: off.
        self.fair_slots = fair_slots
        self._claim = client.register_script(run_scripts.CLAIM)
        self._finish = client.register_script(run_scripts.FINISH)
        self._reap = client.register_script(run_scripts.REAP)
        self._cancel = client.register_script(run_scripts.CANCEL)
        self._expire = client.register_script(run_scripts.EXPIRE)
        self._discard = client.register_script(run_scripts.DISCARD)
        self._reconcile = client.register_script(run_scripts.RECONCILE)
        # Prices what a worker rendered (storage/prices.py); the worker sets it from its settings.
        self.prices: PriceTable | None = None
        self.index = RunIndex(client, retention_seconds)
        self.webhooks = WebhookStore(client, retention_seconds)
        self.batches = BatchStore(client, retention_seconds)
        self.groups = RenderGroups(client, retention_seconds)
        self.events = RunEvents(client, self.index, self.webhooks, self.batches)
        self.previews = PreviewStore(client)
        self.claims = Claims(client, RUN_PREFIX, HEARTBEATS, RUNS)
        # The API's admission policy (per-key cap on active runs, api/auth.py): called with the
        # runs about to be created, before anything is written; an operation (storage/redis_ops.py)
        # that raises to refuse them.
        self.admission: Callable[[list[RunRecord]], Op[None]] | None = None

    # --- written by the API -------------------------------------------------------------
    def create(self, record: RunRecord, also: Callable[[Any], None] | None = None) -> RunRecord:
        return self.create_many([record], also=also)[0]

    def create_many(
        self,
        records: list[RunRecord],
        batch_id: str | None = None,
        batch_webhook: WebhookTarget | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> list[RunRecord]:
        return run(self.redis, self.create_many_op(records, batch_id, batch_webhook, also))

    def create_many_op(
        self,
        records: list[RunRecord],
        batch_id: str | None = None,
        batch_webhook: WebhookTarget | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> Op[list[RunRecord]]:
        """Write runs (and their batch) in one transaction: all of them exist, or none.
        `also(pipeline)` may add commands to the same transaction (their queue messages).
        The runs belong to the calling tenant and carry the request id (core/tenancy.py)."""
        for record in records:
            record.tenant = record.tenant or tenancy.stamp()
            record.request_id = record.request_id or request_id_var.get()
        if self.admission is not None:
            yield from self.admission(records)

        def fill(pipe) -> None:
            if batch_id is not None:
                self.batches.create(pipe, batch_id, [r.run_id for r in records], records[0].created_at, batch_webhook)
            for record in records:
                record.expires_at = record.created_at + self.retention_seconds
                key = run_key(record.run_id)
                pipe.hset(key, mapping=record.to_hash())
                pipe.expireat(key, int(record.expires_at) + 1)
                self.tombstones.add(pipe, record)
                pipe.hincrby(RUNS, RunStatus.queued.value, 1)
                self.index.on_create(pipe, record)
                self.events.status_event(pipe, record)
                if record.render_group:
                    self.groups.add(pipe, record)
            if also is not None:
                also(pipe)

        yield Batch(fill, transaction=True)
        return records

    def cancel(self, run_id: str) -> str:
        if self.get(run_id) is None:  # never existed, expired, or another tenant's
            return "missing"
        outcome = self._cancel(keys=[run_key(run_id)], args=[time.time(), self.fair_slots])
        if outcome == "canceled":
            self._changed(run_id)
        return outcome

    def expire_overdue(self) -> list[str]:
        """End every queued run past its start deadline; returns their ids."""
        return [run_id for run_id in self.index.overdue(time.time()) if self._expire_if_late(run_id)]

    def _expire_if_late(self, run_id: str) -> bool:
        if self._expire(keys=[run_key(run_id)], args=[time.time(), self.fair_slots]):
            self._changed(run_id)
            return True
        return False

    def _changed(self, run_id: str) -> None:
        record = self.get(run_id)
        if record is not None:
            self.events.status_changed(record)

    def discard(self, run_id: str) -> None:
        """Remove a record whose run was never enqueued, giving back its credits (best effort:
        Redis may be down too)."""
        try:
            expires_at = self.redis.hget(run_key(run_id), "expires_at")
            self._discard(keys=[run_key(run_id)], args=[run_id])
            if expires_at:  # never accepted: its id never existed for the caller (404, not 410)
                self.tombstones.remove(run_id, float(expires_at))
        except redis.RedisError:
            pass  # the reaper gives the reservation back once the record is gone (release_orphaned_credits)

    def release_orphaned_credits(self, now: float | None = None, limit: int = 500) -> list[str]:
        """Give back the reservations of runs that will never settle them: their record is
        gone (Redis failed before it was written, or it expired while queued). The reaper
        calls this every tick; returns the run ids given back."""
        now = time.time() if now is None else now
        return self._reconcile(keys=[HOLDS], args=[now, now + HOLD_CHECK_SECONDS, limit, RUN_PREFIX])

    def get(self, run_id: str) -> RunRecord | None:
        return run(self.redis, self.get_op(run_id))

    @staticmethod
    def get_op(run_id: str) -> Op[RunRecord | None]:
        """The run, or None if it never existed, expired, or belongs to another tenant."""
        (raw,) = yield Batch(lambda pipe: pipe.hgetall(run_key(run_id)))
        if not raw or not tenancy.visible(raw.get("tenant")):
            return None
        return RunRecord.from_hash(raw)

    # --- written by the worker ----------------------------------------------------------
    def claim(self, run_id: str, attempt: int, worker: str, stale_after: float) -> str:
        if self._expire_if_late(run_id):
            return RunStatus.expired.value
        now = time.time()
        outcome = self._claim(
            keys=[run_key(run_id), HEARTBEATS, RUNS, message_key(run_id)], args=[attempt, worker, now, stale_after, run_id, self.fair_slots]
        )
        if outcome == "claimed":
            self._changed(run_id)
        return outcome

    def claim_group(self, run_id: str, attempt: int, worker: str, stale_after: float, wanted: int) -> tuple[str, list[RunRecord]]:
        """Claim a run by its own message and, when it belongs to a render group, up to `wanted - 1`
        more of the group's queued runs (their messages taken off their queues: no worker spends a
        delivery finding them taken); one script, then their announcements in one round trip.
        (the run's claim outcome as `claim` gives it, the claimed records: the run's first)."""
        outcome, entries = self.claims.own(run_id, attempt, worker, stale_after, wanted, self.fair_slots)
        return outcome, self._claimed(entries)

    def claim_next(self, queue: str, higher: list[str], worker: str, stale_after: float, wanted: int,
                   stopping: str) -> list[RunRecord]:
        """The run whose message `queue` would deliver next, with up to `wanted - 1` queued runs of
        its render group, claimed (its message taken off) only when the `higher` priority lists
        are empty and the key `stopping` (storage/claims.py `stopping_key`) does not exist: a
        worker draining a backlog takes its next runs in the queue's own order without a round
        trip through Celery."""
        _, entries = self.claims.next(queue, higher, stopping, worker, stale_after, wanted, self.fair_slots)
        return self._claimed(entries)

    def _claimed(self, entries: list) -> list[RunRecord]:
        """The claimed records of a group claim's entries; every status change of it announced."""
        claimed = [RunRecord.from_hash(dict(zip(e[2][::2], e[2][1::2]))) for e in entries if e[1] == "claimed"]
        expired = [record for e in entries if e[1] == "expired" and (record := self.get(e[0])) is not None]
        self.events.status_changed_many(claimed + expired)
        return claimed

    def heartbeat(self, *run_ids: str) -> None:
        # XX: never re-adds a run a reaper has already taken back.
        now = time.time()
        self.redis.zadd(HEARTBEATS, {run_id: now for run_id in run_ids}, xx=True)

    def report_progress(self, run_id: str, progress: int | None) -> bool:
        """Write the run's progress (None: unchanged) and read whether it was asked to stop, in
        one round trip. True when a cancel was requested."""
        with self.redis.pipeline(transaction=False) as pipe:
            if progress is not None:
                pipe.hset(run_key(run_id), "progress", progress)
                self.events.progress(pipe, run_id, progress)
            pipe.hget(run_key(run_id), "cancel_requested")
            return pipe.execute()[-1] == "True"

    def cancel_requested(self, run_id: str) -> bool:
        """Checked before every denoising step, so it is one HGET."""
        return self.redis.hget(run_key(run_id), "cancel_requested") == "True"

    def complete(
        self, run_id: str, attempt: int, images: list[StoredImage], timings: dict[str, float],
        record: RunRecord | None = None,
    ) -> bool:
        """Mark the run completed, charging the price of the images rendered; False if this
        delivery no longer owns it. `record`: the run as claimed (the worker has it), so its
        request need not be read back."""
        if record is None:
            request, operation, pool = self.redis.hmget(run_key(run_id), "request", "operation", "pool")
            request = json.loads(request) if request else None
        else:
            request, operation, pool = record.request, record.operation, record.pool
        rendered = ""
        if request:
            record_render(self.redis, request, timings, pool, operation)
            if self.prices is not None:
                # What was rendered: a mask or control map returned besides the images is not charged.
                pixels = sum(image.width * image.height for image in images if image.role == "image")
                rendered = self.prices.price(operation or "", request, pixels)
        done = RunRecord(run_id=run_id, images=images, timings=timings, progress=100, completed_at=time.time())
        fields = {k: v for k, v in done.to_hash().items() if k in ("images", "timings", "progress", "completed_at")}
        return self._finish_with(run_id, attempt, RunStatus.completed, fields, rendered)

    def stopped(self, run_id: str, attempt: int) -> bool:
        """The render stopped at a cancel request: the run ends canceled."""
        return self._finish_with(run_id, attempt, RunStatus.canceled, {"completed_at": str(time.time())})

    def fail(self, run_id: str, attempt: int, problem: Problem) -> bool:
        if self.cancel_requested(run_id):
            # Whatever stopped a render that was asked to stop, it ends canceled.
            return self.stopped(run_id, attempt)
        fields = {"error": problem.model_dump_json(exclude_none=True), "completed_at": str(time.time())}
        finished = self._finish_with(run_id, attempt, RunStatus.failed, fields)
        if finished:
            self.redis.hincrby(FAILURES, problem.type.rsplit("/", 1)[-1], 1)
        return finished

    def _finish_with(
        self, run_id: str, attempt: int, status: RunStatus, fields: dict[str, Any], rendered: int | str = ""
    ) -> bool:
        args: list[Any] = [attempt, run_id, rendered, "status", status.value]
        for key, value in fields.items():
            args += [key, value]
        written = self._finish(keys=[run_key(run_id), HEARTBEATS, RUNS, preview_key(run_id)], args=args)
        if not written:
            return False
        self.events.status_changed(RunRecord.from_hash(dict(zip(written[::2], written[1::2]))))
        return True

    def reap_stale(self, stale_after: float, max_attempts: int) -> list[tuple[str, int]]:
        """Take back runs whose worker fell silent; returns (run_id, attempt) to re-enqueue."""
        now = time.time()
        problem = Problem.of(
            "worker-lost", 500, detail=f"the worker died {max_attempts} times while rendering this run"
        )
        flat = self._reap(
            keys=[HEARTBEATS, RUNS, FAILURES],
            args=[now - stale_after, RUN_PREFIX, max_attempts, problem.model_dump_json(exclude_none=True), now],
        )
        for i in range(0, len(flat), 2):
            self._changed(flat[i])
        # A negative attempt marks a run that used up its attempts and ended failed.
        return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2) if int(flat[i + 1]) > 0]

    # --- measured render speed, for estimated_time --------------------------------------
    def record_render_rate(self, seconds_per_unit: float, weight: float = 0.2) -> None:
        current = self.redis.get(STEP_RATE)
        rate = seconds_per_unit if current is None else (1 - weight) * float(current) + weight * seconds_per_unit
        self.redis.set(STEP_RATE, rate)

    def render_stats(self, default_rate: float, pool: str | None = None) -> RenderStats:
        return run(self.redis, self.render_stats_op(default_rate, pool))

    @staticmethod
    def render_stats_op(default_rate: float, pool: str | None = None) -> Op[RenderStats]:
        return stats_op(default_rate, rate_key=STEP_RATE, pool=pool)

    def running(self, pool: str | None = None) -> list[tuple[str, dict, int]]:
        """(run id, request, progress) of every run a worker (of `pool`; None: of any) holds now."""
        return run(self.redis, self.running_op(pool))[0]

    @staticmethod
    def running_op(pool: str | None = None) -> Op[tuple[list[tuple[str, dict, int]], int]]:
        """(what `running` returns, how many workers (of `pool`) are rendering now, at least 1)."""

        def fill(pipe) -> None:
            pipe.zrange(HEARTBEATS, 0, -1)

        (run_ids,) = yield Batch(fill)
        if not run_ids:
            return [], 1

        def fill_runs(pipe) -> None:
            for run_id in run_ids:
                pipe.hmget(run_key(run_id), "request", "progress", "pool", "worker", "operation")

        rows = [(run_id, *row) for run_id, row in zip(run_ids, (yield Batch(fill_runs)))
                if row[0] and (pool is None or (row[2] or "default") == pool)]
        # A worker beats for the run it renders, or for each run of the batch it renders.
        # The request carries its operation, for its render time (storage/render_stats.py).
        held = [(run_id, json.loads(request) | {"operation": operation}, int(progress or 0))
                for run_id, request, progress, _, _, operation in rows]
        return held, max(1, len({row[4] for row in rows}))

    def busy_workers(self) -> int:
        """Workers rendering right now (each beats for its run); at least 1."""
        return max(1, self.redis.zcard(HEARTBEATS))

    def render_rate(self, default: float) -> float:
        value = self.redis.get(STEP_RATE)
        return float(value) if value is not None else default


class ProgressThrottle:
    """A render's progress callback. At most once per `min_interval` seconds (always the first and
    the last step) it writes the progress and reads whether the run was asked to stop, in one
    Redis round trip; the steps between cost nothing. A cancel is seen within `min_interval`
    (or the step in flight, whichever is longer)."""

    def __init__(self, store: RunStore, run_id: str, min_interval: float) -> None:
        self.store = store
        self.run_id = run_id
        self.min_interval = min_interval
        self._last_check = 0.0
        self._last_value = -1

    def __call__(self, step: int, total: int) -> bool:
        # 99 at most until the images are stored: 100 means the run is completed.
        value = min(99, int(100 * step / max(total, 1)))
        now = time.monotonic()
        if step < total and self._last_value >= 0 and now - self._last_check < self.min_interval:
            return True
        canceled = self.store.report_progress(self.run_id, value if value != self._last_value else None)
        self._last_check, self._last_value = now, value
        return not canceled  # False: the pipeline skips every step after this one
