"""What is left of a run once its record has expired: enough to answer 410 Gone, not 404.

A run's record (storage/runs.py) expires with the run, and then nothing would tell an id that
existed from one that never did. Each run leaves a tombstone, written with its record in the
same transaction: one field (run id → tenant) in the hash of the day its record expires,
`renderq:gone:{day}` (days since the epoch, UTC), which Redis drops `keep_seconds` (7 days,
RENDERQ_TOMBSTONE_SECONDS) after that day ends. A hash field costs a few dozen bytes where a key
of its own per run would cost a hundred, and the day hashes leave by themselves (no sweep).

Read only when a record is missing: the hashes of the days a run could have expired on and
still be remembered, and of the days a live run expires on (9 or 10 HGETs, one round trip). The tenant is kept so that another
tenant's expired run is a 404, as its live run is (api/auth.py). A run whose record is
discarded before it was ever accepted (storage/runs.py `discard`) leaves no tombstone.
"""

from __future__ import annotations

import time

import redis

from core import tenancy

from .records import RunRecord
from .redis_ops import Batch, Op

TOMBSTONES = "renderq:gone:"
DAY = 86400
DEFAULT_KEEP_SECONDS = 7 * DAY


def _day(when: float) -> int:
    return int(when // DAY)


class Tombstones:
    def __init__(self, client: redis.Redis, retention_seconds: int, keep_seconds: int = DEFAULT_KEEP_SECONDS) -> None:
        self.redis, self.retention_seconds, self.keep_seconds = client, retention_seconds, keep_seconds

    def add(self, pipe, record: RunRecord) -> None:
        """In the transaction that creates the run (its `expires_at` set)."""
        day = _day(record.expires_at)
        pipe.hset(TOMBSTONES + str(day), record.run_id, record.tenant)
        pipe.expireat(TOMBSTONES + str(day), (day + 1) * DAY + self.keep_seconds)

    def remove(self, run_id: str, expires_at: float) -> None:
        self.redis.hdel(TOMBSTONES + str(_day(expires_at)), run_id)

    def gone_op(self, run_id: str, now: float | None = None) -> Op[bool]:
        """Whether `run_id` names a run of the calling tenant whose record is gone: expired within
        the last `keep_seconds` (to the end of its expiry day), or removed before its time (Redis
        evicting under memory pressure). Ask only once its record is found missing."""
        now = time.time() if now is None else now
        days = range(_day(now - self.keep_seconds), _day(now + self.retention_seconds) + 1)
        tenants = yield Batch(lambda pipe: [pipe.hget(TOMBSTONES + str(day), run_id) for day in days])
        return any(tenant is not None and tenancy.visible(tenant) for tenant in tenants)
