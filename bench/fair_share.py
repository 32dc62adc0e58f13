"""`python -m bench.fair_share`: what fair share (storage/fair_share.py) adds to a submit and to a
claim, in process, on a real redis-server (no HTTP, no worker): the submit's Redis write as
api/submission.py makes it (the run record and its queue message in one transaction, the message
built by Celery and kombu) and the worker's claim script, with RENDERQ_FAIR_SHARE_SLOTS=0 and =1.
Under fair share every claim here admits the tenant's next staged run (the dearest case).
Rounds alternate the order; the figures are medians of the per-round means, in microseconds."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from api import submission
from api.services import Services
from core.queue import make_celery
from core.settings import Settings
from devkit.procs import start_redis
from storage.local import LocalImageStore
from storage.records import RunRecord, new_run_id
from storage.redis_client import make_redis
from storage.redis_ops import run
from storage.runs import RunStore

REQUEST = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2, "num_images": 1}


def services(redis_url: str, slots: int, workdir: Path) -> Services:
    settings = Settings(redis_url=redis_url, fair_share_slots=slots, storage="local", local_dir=workdir)
    return Services(settings=settings, runs=RunStore(make_redis(settings), settings.retention_seconds, fair_slots=slots),
                    images=LocalImageStore(workdir, "http://bench", "bench"), celery=make_celery(settings))


def submits(svc: Services, count: int) -> tuple[float, list[str]]:
    """Seconds per submit write, and the runs written (one tenant's: all but the first staged)."""
    ids = []
    began = time.perf_counter()
    for _ in range(count):
        record = RunRecord(run_id=new_run_id(), request=REQUEST, tenant="bench")
        op, _ = submission._create_op(svc, [record])
        run(svc.runs.redis, op)
        ids.append(record.run_id)
    return (time.perf_counter() - began) / count, ids


def claims(svc: Services, run_ids: list[str]) -> float:
    """Seconds per claim of runs queued in submit order (each admits the next under fair share)."""
    began = time.perf_counter()
    for run_id in run_ids:  # as worker/tasks.py claims a delivery (with its render group's, when it has one)
        assert svc.runs.claim_group(run_id, 1, "bench:1", 6.0, svc.settings.max_batch)[0] == "claimed"
    return (time.perf_counter() - began) / len(run_ids)


def redis_usec(svc: Services, count: int) -> float:
    """Microseconds Redis itself spent per run on everything sent since its stats were reset
    (`INFO commandstats`): unlike the client's clock, not stretched by a busy machine."""
    stats = svc.runs.redis.info("commandstats")
    return sum(row["usec"] for name, row in stats.items() if name not in ("cmdstat_info", "cmdstat_config|resetstat")) / count


def measure(rounds: int = 6, count: int = 1000) -> dict[str, dict[str, float]]:
    """{off|on: {submit, claim, submit_redis, claim_redis}}: µs per run, medians of the rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(Path(tmp))
        try:
            each = {slots: services(url + "/1", slots, Path(tmp)) for slots in (0, 1)}
            figures: dict[int, dict[str, list[float]]] = {slots: {} for slots in each}
            for r in range(rounds):
                for slots in (0, 1) if r % 2 == 0 else (1, 0):
                    svc, into = each[slots], figures[slots]
                    svc.runs.redis.flushdb()
                    svc.runs.redis.config_resetstat()
                    seconds, ids = submits(svc, count)
                    into.setdefault("submit_redis", []).append(redis_usec(svc, count) / 1e6)
                    into.setdefault("submit", []).append(seconds)
                    svc.runs.redis.config_resetstat()
                    into.setdefault("claim", []).append(claims(svc, ids))
                    into.setdefault("claim_redis", []).append(redis_usec(svc, count) / 1e6)
        finally:
            proc.stop()
    return {("off" if slots == 0 else "on"): {what: statistics.median(values) * 1e6 for what, values in by.items()}
            for slots, by in figures.items()}


def main() -> int:
    result = measure()
    for what in ("submit", "claim"):
        off, on = result["off"], result["on"]
        print(f"{what}: fair share off {off[what]:.0f} µs, on {on[what]:.0f} µs ({on[what] - off[what]:+.0f} µs); "
              f"Redis's own time {off[what + '_redis']:.0f} µs → {on[what + '_redis']:.0f} µs "
              f"({on[what + '_redis'] - off[what + '_redis']:+.0f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
