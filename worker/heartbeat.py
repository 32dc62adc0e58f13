"""A thread that tells Redis the render of a run (or of the runs of a batch) is still alive."""

from __future__ import annotations

import threading

from storage.runs import RunStore


class Heartbeat:
    """Beats every `interval` seconds while the block runs. A thread, not the progress
    callback, so that a single slow denoising step does not look like a dead worker."""

    def __init__(self, runs: RunStore, run_ids: list[str], interval: float) -> None:
        self.runs = runs
        self.run_ids = run_ids  # the runs rendered together (one, or a batch)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_ids[0]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.runs.heartbeat(*self.run_ids)
            except Exception:  # a missed beat is retried on the next tick
                pass

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        # No join: waiting for the thread to wake up and exit put a scheduler round trip on
        # every job's critical path. A beat that still lands after this is harmless: it only
        # refreshes a run that is still registered (ZADD XX), and finishing a run removes it.
        self._stop.set()
