"""What each worker pool has: runs queued and running, workers idle and busy, the oldest queued
run's age. Read for GET /v1/health and /metrics in two round trips, whatever the queue lengths.

- queued: the pool's queued-run sets (storage/run_index.py), one per priority;
- running: runs with a live heartbeat (storage/runs.py HEARTBEATS) whose record says the pool;
- workers: render workers of the pool seen by their reaper within the window (core/metrics.py
  `worker_seen`); busy: distinct workers holding its running runs; idle: the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from core.metrics import POOL_WORKERS

from .redis_ops import Batch, Op, run
from .run_index import PRIORITY_ORDER, queued_key
from .runs import HEARTBEATS, RUN_PREFIX


@dataclass
class PoolHealth:
    pool: str
    queued: int = 0
    running: int = 0
    workers: int = 0
    busy: int = 0
    oldest_queued_seconds: float | None = None

    @property
    def idle(self) -> int:
        return max(0, self.workers - self.busy)


def read_pools(client: redis.Redis, pools: list[str], worker_window: float, now: float | None = None) -> list[PoolHealth]:
    return run(client, pools_op(pools, worker_window, now))


def pools_op(pools: list[str], worker_window: float, now: float | None = None) -> Op[list[PoolHealth]]:
    """Each of `pools` (in order) as it is now."""
    now = time.time() if now is None else now

    def fill(pipe) -> None:
        for pool in pools:
            for priority in PRIORITY_ORDER:
                pipe.zcard(queued_key(pool, priority))
                pipe.zrange(queued_key(pool, priority), 0, 0, withscores=True)
            pipe.zcount(POOL_WORKERS + pool, now - worker_window, "+inf")
        pipe.zrange(HEARTBEATS, 0, -1)

    replies = yield Batch(fill)
    health, per_pool = {}, 2 * len(PRIORITY_ORDER) + 1
    for index, pool in enumerate(pools):
        row = replies[index * per_pool:(index + 1) * per_pool]
        heads = [head[0][1] for head in row[1:-1:2] if head]
        health[pool] = PoolHealth(pool, queued=sum(row[0:-1:2]), workers=row[-1],
                                  oldest_queued_seconds=round(max(0.0, now - min(heads)), 3) if heads else None)
    running_ids = replies[-1]
    if running_ids:
        rows = yield Batch(lambda pipe: [pipe.hmget(RUN_PREFIX + run_id, "pool", "worker") for run_id in running_ids])
        busy: dict[str, set[str]] = {}
        for pool, worker in rows:
            if pool is None and worker is None:
                continue  # its record expired under it
            entry = health.get(pool or "default")
            if entry is not None:
                entry.running += 1
                busy.setdefault(entry.pool, set()).add(worker or "")
        for pool, workers in busy.items():
            health[pool].busy = len(workers)
            health[pool].workers = max(health[pool].workers, len(workers))  # one rendering before it was seen
    return [health[pool] for pool in pools]
