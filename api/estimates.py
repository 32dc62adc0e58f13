"""What every estimate needs and no single run owns, read at most once a second per process.

The measured render stats, the runs being rendered now and how many workers hold one change
slowly; reading them on every status read cost five Redis round trips, more than the rest
of the read. An estimate a second stale is still an estimate; the queue position itself is
always read fresh.
"""

from __future__ import annotations

import threading
import time

from storage.render_stats import RenderStats
from storage.runs import RunStore


class EstimateInputs:
    def __init__(self, runs: RunStore, default_rate: float, ttl: float = 1.0) -> None:
        self.runs, self.default_rate, self.ttl = runs, default_rate, ttl
        self._lock = threading.Lock()  # sync routes run on the thread pool
        self._stats: tuple[float, RenderStats] | None = None
        self._running: tuple[float, float, int] | None = None

    def stats(self) -> RenderStats:
        with self._lock:
            if self._stats is None or time.monotonic() - self._stats[0] > self.ttl:
                self._stats = (time.monotonic(), self.runs.render_stats(self.default_rate))
            return self._stats[1]

    def running(self, stats: RenderStats) -> tuple[float, int]:
        """(seconds the busy workers still need for what they hold, busy workers ≥ 1)."""
        with self._lock:
            if self._running is None or time.monotonic() - self._running[0] > self.ttl:
                seconds = sum(stats.run_seconds(req, p) - stats.overhead for req, p in self.runs.running())
                self._running = (time.monotonic(), seconds, self.runs.busy_workers())
            return self._running[1], self._running[2]
