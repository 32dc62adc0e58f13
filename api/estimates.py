"""What every estimate needs and no single run owns, read at most once a second per process.

The measured render stats, the runs being rendered now and how many workers hold one change
slowly; reading them on every status read cost five Redis round trips, more than the rest
of the read. An estimate a second stale is still an estimate; the queue position itself is
always read fresh, and so is what the workers hold for a submit's answer (two round trips:
a run submitted just before this one and claimed since is neither queued nor in a view read
before it; the estimates bench, BENCHMARKS.md). For status reads what the workers hold is kept
no longer than a quarter of a typical run: where renders take 50 ms, a second-old view of them
says nothing of now.

Operations (storage/redis_ops.py), so that sync and async routes share them. No lock: two
requests that find the cache stale at once both read, and the later answer is kept.
"""

from __future__ import annotations

import time

from storage.redis_ops import Op, done
from storage.render_stats import RenderStats
from storage.runs import RunStore

# Seconds per (step × image × megapixel) assumed before any worker has measured one.
DEFAULT_RENDER_RATE = 1.0


class EstimateInputs:
    """Per worker pool: a pool's runs wait only for its own workers, at its models' speed."""

    def __init__(self, runs: RunStore, default_rate: float, ttl: float = 1.0) -> None:
        self.runs, self.default_rate, self.ttl = runs, default_rate, ttl
        self._stats: dict[str, tuple[float, RenderStats]] = {}
        self._running: dict[str, tuple[float, float, int]] = {}

    def stats(self, pool: str = "default") -> Op[RenderStats]:
        cached = self._stats.get(pool)
        if cached is not None and time.monotonic() - cached[0] <= self.ttl:
            return done(cached[1])
        return self._read_stats(pool)

    def _read_stats(self, pool: str) -> Op[RenderStats]:
        stats = yield from self.runs.render_stats_op(self.default_rate, pool)
        self._stats[pool] = (time.monotonic(), stats)
        return stats

    def running(self, stats: RenderStats, pool: str = "default", fresh_for: str | None = None) -> Op[tuple[float, int]]:
        """(seconds the pool's busy workers still need for what they hold, its busy workers ≥ 1).
        `fresh_for`: a run just submitted: read now, and without that run (a worker may have
        claimed it since its record was read), else a view at most a quarter of a typical run old."""
        cached = self._running.get(pool)
        typical = stats.typical_seconds()
        ttl = self.ttl if typical is None else min(self.ttl, typical / 4)
        if fresh_for is None and cached is not None and time.monotonic() - cached[0] <= ttl:
            return done((cached[1], cached[2]))
        return self._read_running(stats, pool, fresh_for)

    def _read_running(self, stats: RenderStats, pool: str, leaving_out: str | None = None) -> Op[tuple[float, int]]:
        held, workers = yield from self.runs.running_op(pool)
        seconds = sum(stats.run_seconds(req, p) - stats.overhead for run_id, req, p in held if run_id != leaving_out)
        self._running[pool] = (time.monotonic(), seconds, workers)
        return seconds, workers
