"""Indexes over run records: newest-first listing, and the queued runs in the order workers take them.

- `renderq:index:all` and `renderq:index:batch:{id}`: sorted sets of run ids by created_at, for
  `GET /v1/generations` (cursor pagination). Entries older than the retention are pruned on write.
- `renderq:queued:{priority}`: the runs still queued, by submit time, one set per priority; with
  `renderq:queued:shape` (run id → size, steps, images) they give a run's queue position and the
  seconds of work ahead of it, timed with what the workers measure (storage/render_stats.py).
- `renderq:deadlines`: queued runs with a start deadline, by deadline, for the expiry sweep.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from typing import Iterator

import redis

from .records import Priority, RunRecord
from .redis_ops import Batch, Op, run
from .render_stats import RenderStats

INDEX_ALL = "renderq:index:all"
INDEX_BATCH = "renderq:index:batch:"
QUEUED = "renderq:queued:"
QUEUED_SHAPE = "renderq:queued:shape"
SHAPE_FIELDS = ("width", "height", "num_inference_steps", "num_images")
DEADLINES = "renderq:deadlines"
PRIORITY_ORDER: tuple[Priority, ...] = (Priority.high, Priority.normal, Priority.low)


def encode_cursor(score: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError on a cursor we did not write."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    score, run_id = raw.split("|", 1)
    return float(score), run_id


class RunIndex:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds

    # --- writes (inside the caller's pipeline) -------------------------------------------
    def on_create(self, pipe, record: RunRecord) -> None:
        pipe.zremrangebyscore(INDEX_ALL, "-inf", time.time() - self.retention_seconds)
        pipe.zadd(INDEX_ALL, {record.run_id: record.created_at})
        if record.batch_id:
            key = INDEX_BATCH + record.batch_id
            pipe.zadd(key, {record.run_id: record.created_at})
            pipe.expireat(key, int(record.expires_at) + 1)

    def on_status(self, pipe, record: RunRecord) -> None:
        """Keep the queued sets in step with the run's status."""
        key = QUEUED + record.priority.value
        if record.status.value == "queued":
            pipe.zadd(key, {record.run_id: record.created_at})
            shape = {k: record.request[k] for k in SHAPE_FIELDS if k in record.request}
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
        Runs of a higher priority are all ahead; of the same priority, the earlier ones.

        Two round trips (ranks, counts and heads of the queues pipelined, then the shapes), and
        at most `cap` shapes: every submit answers with its run's estimate, so this runs once per
        request; past the cap the mean of what was read extrapolates as well as more would."""
        higher = PRIORITY_ORDER[: PRIORITY_ORDER.index(record.priority)]

        def fill(pipe) -> None:
            pipe.zrank(QUEUED + record.priority.value, record.run_id)
            for priority in higher:
                pipe.zcard(QUEUED + priority.value)
                pipe.zrange(QUEUED + priority.value, 0, cap - 1)
            pipe.zrange(QUEUED + record.priority.value, 0, cap - 1)

        replies = yield Batch(fill)
        rank = replies[0]
        if rank is None:
            return None
        count, ahead = rank, []
        for i in range(len(higher)):
            count += replies[1 + 2 * i]
            ahead += replies[2 + 2 * i]
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

    def newest_first(self, batch_id: str | None, cursor: str | None, chunk: int = 200) -> Iterator[tuple[str, str]]:
        """(run_id, cursor after it), newest first, starting after `cursor`. Runs created in the
        same instant are ordered by id, so the cursor (score, id) is exact even for batches."""
        key = INDEX_BATCH + batch_id if batch_id else INDEX_ALL
        max_score, after_id = decode_cursor(cursor) if cursor else ("+inf", None)
        offset = 0
        while True:
            rows = self.redis.zrevrangebyscore(key, max_score, "-inf", start=offset, num=chunk, withscores=True)
            if not rows:
                return
            offset += len(rows)
            for run_id, score in rows:
                if after_id is not None and score == float(max_score) and run_id >= after_id:
                    continue
                yield run_id, encode_cursor(score, run_id)
