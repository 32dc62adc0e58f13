"""Indexes over run records: newest-first listing, and the queued runs in the order workers take them.

- `renderq:index:tenant:{tenant}` and `renderq:index:batch:{id}`: sorted sets of run ids by
  created_at, for `GET /v1/generations` (storage/run_listing.py). A listing reads its caller's
  own index only, so its first page is that tenant's newest runs however many runs other
  tenants hold. Entries older than the retention are pruned on each write of their index, never
  read (a listing starts at now − retention), and leave with the index key, which expires a
  minute after its newest run; a batch's index expires with its batch.
- `renderq:queued:{priority}` (the default pool) and `renderq:queued:{pool}:{priority}`: the runs
  still queued, by submit time, one set per worker pool and priority (`renderq:queued:pools`
  names the pools that ever had one); with
  `renderq:queued:shape` (run id → size, steps, images) they give a run's queue position and the
  seconds of work ahead of it, timed with what the workers measure (storage/render_stats.py).
- `renderq:deadlines`: queued runs with a start deadline, by deadline, for the expiry sweep.
  A run whose record expires while still queued leaves these three with the reaper's
  `prune_expired`.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from typing import Iterator

import redis

from core.queue import DEFAULT_POOL

from . import fair_share
from .records import Priority, RunRecord
from .redis_ops import Batch, Op, run
from .render_stats import RenderStats

INDEX_TENANT = "renderq:index:tenant:"
INDEX_BATCH = "renderq:index:batch:"
QUEUED = "renderq:queued:"
QUEUED_SHAPE = "renderq:queued:shape"
QUEUED_POOLS = "renderq:queued:pools"  # the named pools that have had a queued run
SHAPE_FIELDS = ("width", "height", "num_inference_steps", "num_images", "strength")
DEADLINES = "renderq:deadlines"
# The one index of every tenant's runs that listings walked before per-tenant indexes; nothing
# writes it now, and prune_expired moves what is left of it into the tenants' indexes.
LEGACY_INDEX_ALL = "renderq:index:all"
RUN_PREFIX = "renderq:run:"  # storage/runs.py's (which imports this module)
INDEX_SLACK = 60  # seconds a tenant's index outlives its newest run (clocks of API hosts differ)
PRIORITY_ORDER: tuple[Priority, ...] = (Priority.high, Priority.normal, Priority.low)


def queued_key(pool: str | None, priority: Priority | str) -> str:
    """The set of `pool`'s queued runs of `priority`; the default pool keeps the unpooled names."""
    priority = priority.value if isinstance(priority, Priority) else priority
    return QUEUED + (priority if not pool or pool == DEFAULT_POOL else f"{pool}:{priority}")


def tenant_index(tenant: str | None) -> str:
    return INDEX_TENANT + (tenant or "")


def encode_cursor(score: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError on a cursor we did not write."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    score, run_id = raw.split("|", 1)
    if math.isnan(float(score)):
        raise ValueError("not a time")
    return float(score), run_id


class RunIndex:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds

    # --- writes (inside the caller's pipeline) -------------------------------------------
    def on_create(self, pipe, record: RunRecord) -> None:
        key = tenant_index(record.tenant)
        pipe.zremrangebyscore(key, "-inf", time.time() - self.retention_seconds)
        pipe.zadd(key, {record.run_id: record.created_at})
        pipe.expire(key, self.retention_seconds + INDEX_SLACK)  # outlives its newest run
        if record.pool != DEFAULT_POOL:
            pipe.sadd(QUEUED_POOLS, record.pool)
        if record.batch_id:
            key = INDEX_BATCH + record.batch_id
            pipe.zadd(key, {record.run_id: record.created_at})
            pipe.expireat(key, int(record.expires_at) + 1)

    def on_status(self, pipe, record: RunRecord) -> None:
        """Keep the queued sets in step with the run's status."""
        key = queued_key(record.pool, record.priority)
        if record.status.value == "queued":
            pipe.zadd(key, {record.run_id: record.created_at})
            shape = {k: record.request[k] for k in SHAPE_FIELDS if k in record.request} | {"operation": record.operation}
            pipe.hset(QUEUED_SHAPE, record.run_id, json.dumps(shape))
            if record.start_deadline:
                pipe.zadd(DEADLINES, {record.run_id: record.start_deadline})
        else:
            pipe.zrem(key, record.run_id)
            pipe.hdel(QUEUED_SHAPE, record.run_id)
            pipe.zrem(DEADLINES, record.run_id)

    # --- reads ----------------------------------------------------------------------------
    def overdue(self, now: float) -> list[str]:
        return self.redis.zrangebyscore(DEADLINES, "-inf", now)

    def queue_position(self, record: RunRecord, stats: RenderStats, cap: int = 50) -> tuple[int, float] | None:
        return run(self.redis, self.queue_position_op(record, stats, cap))

    @staticmethod
    def queue_position_op(record: RunRecord, stats: RenderStats, cap: int = 50) -> Op[tuple[int, float] | None]:
        """(runs ahead of this one, seconds their renders take), or None when it is not queued.
        Runs of its pool only: of a higher priority all are ahead; of the same priority, the earlier ones.

        Two round trips (ranks, counts and heads of the queues pipelined, then the shapes), and
        at most `cap` shapes: every submit answers with its run's estimate, so this runs once per
        request; past the cap the mean of what was read extrapolates as well as more would."""
        higher = PRIORITY_ORDER[: PRIORITY_ORDER.index(record.priority)]
        own = queued_key(record.pool, record.priority)  # a pool's workers take only its own runs

        def fill(pipe) -> None:
            pipe.zrank(own, record.run_id)
            for priority in higher:
                pipe.zcard(queued_key(record.pool, priority))
                pipe.zrange(queued_key(record.pool, priority), 0, cap - 1)
            pipe.zrange(own, 0, cap - 1)

        replies = yield Batch(fill)
        rank = replies[0]
        if rank is None:
            return None
        count, ahead = rank, []
        for i in range(len(higher)):
            count += replies[1 + 2 * i]
            ahead += replies[2 + 2 * i]
        if record.queue:  # admitted by fair share: the tenants take turns in its list
            return (yield from fair_share.queue_position_op(record, stats, count - rank, ahead + replies[-1], cap))
        ahead += replies[-1][: min(rank, cap)]
        shapes: Counter[str] = Counter()
        if ahead:
            (raw_shapes,) = yield Batch(lambda pipe: pipe.hmget(QUEUED_SHAPE, ahead[:cap]))
            shapes.update(shape for shape in raw_shapes if shape is not None)
        # Queues hold few distinct shapes: each is decoded and estimated once, not once per run.
        seconds = sum(stats.run_seconds(json.loads(shape)) * n for shape, n in shapes.items())
        read = sum(shapes.values())
        mean = seconds / read if read else stats.overhead
        # Past the cap, the rest of the queue is counted at the mean of what was read.
        return count, seconds + mean * max(0, count - read)

    def newest_first(
        self, key: str, cursor: str | None, since: float | None = None, until: float | None = None, chunk: int = 200
    ) -> Iterator[list[tuple[str, str]]]:
        """Chunks of (run_id, cursor after it) of index `key`, newest first, starting after
        `cursor`, created at or after `since` and before `until` (never before now − retention).
        Runs created in the same instant are ordered by id, so the cursor (score, id) is exact
        even for batches, and runs added later (newer) never shift a page."""
        max_score, after_id = decode_cursor(cursor) if cursor else (float("inf"), None)
        top: str = "+inf" if max_score == float("inf") else repr(max_score)
        if until is not None and until <= max_score:
            top, after_id = f"({until!r}", None
        bottom = max(since if since is not None else float("-inf"), time.time() - self.retention_seconds)
        offset = 0
        while True:
            rows = self.redis.zrevrangebyscore(key, top, bottom, start=offset, num=chunk, withscores=True)
            if not rows:
                return
            offset += len(rows)
            yield [
                (run_id, encode_cursor(score, run_id))
                for run_id, score in rows
                if after_id is None or score != max_score or run_id < after_id
            ]

    # --- upkeep (the reaper) --------------------------------------------------------------
    def prune_expired(self, now: float | None = None, limit: int = 1000) -> int:
        """Take runs whose records have expired (created before now − retention) out of the
        queue indexes (a run that expired while queued would stay there); move what is left of
        the legacy global index into the tenants' indexes. Returns the runs pruned."""
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        pruned = 0
        for key in self.queued_keys():
            run_ids = self.redis.zrangebyscore(key, "-inf", cutoff, start=0, num=limit)
            if run_ids:
                with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zrem(key, *run_ids)
                    pipe.hdel(QUEUED_SHAPE, *run_ids)
                    pipe.zrem(DEADLINES, *run_ids)
                    pipe.execute()
                pruned += len(run_ids)
        self._migrate_legacy_index(cutoff, limit)
        return pruned

    def pools(self) -> list[str]:
        """The default pool and every named pool that has had a queued run."""
        return [DEFAULT_POOL, *sorted(self.redis.smembers(QUEUED_POOLS))]

    def queued_keys(self, pools: list[str] | None = None) -> list[str]:
        return [queued_key(pool, priority) for pool in (pools or self.pools()) for priority in PRIORITY_ORDER]

    def _migrate_legacy_index(self, cutoff: float, limit: int) -> None:
        rows = self.redis.zrangebyscore(LEGACY_INDEX_ALL, cutoff, "+inf", start=0, num=limit, withscores=True)
        if rows:
            with self.redis.pipeline(transaction=False) as pipe:
                for run_id, _ in rows:
                    pipe.hget(RUN_PREFIX + run_id, "tenant")
                tenants = pipe.execute()
            with self.redis.pipeline(transaction=False) as pipe:
                for (run_id, created_at), tenant in zip(rows, tenants):
                    if tenant is not None:
                        pipe.zadd(tenant_index(tenant), {run_id: created_at})
                        pipe.expire(tenant_index(tenant), self.retention_seconds + INDEX_SLACK)
                pipe.zrem(LEGACY_INDEX_ALL, *[run_id for run_id, _ in rows])
                pipe.execute()
        if len(rows) < limit:
            self.redis.zremrangebyscore(LEGACY_INDEX_ALL, "-inf", cutoff)
