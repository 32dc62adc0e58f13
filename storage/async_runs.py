"""The API's side of the run store on redis.asyncio: create and read records, one round trip each.

Writes that race (claim, finish, reap) stay in the synchronous RunStore the worker uses;
the API only creates records and reads them.
"""

from __future__ import annotations

import time
from typing import Callable

from .records import RunRecord
from .runs import STEP_RATE, run_key


class AsyncRunStore:
    def __init__(self, client, retention_seconds: int, rate_ttl: float = 1.0) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        # The measured render rate moves slowly; reading it once a second instead of on
        # every status read saves a Redis round trip per request.
        self.rate_ttl = rate_ttl
        self._rate: tuple[float, float | None] = (0.0, None)

    async def create(self, record: RunRecord, also: Callable[[object], None] | None = None) -> RunRecord:
        """Write the record with its TTL; `also(pipeline)` may add commands (the queue message)
        to the same transaction, so that both land or neither does."""
        record.expires_at = record.created_at + self.retention_seconds
        key = run_key(record.run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record.to_hash())
            pipe.expireat(key, int(record.expires_at) + 1)
            if also is not None:
                also(pipe)
            await pipe.execute()
        return record

    async def get(self, run_id: str) -> RunRecord | None:
        raw = await self.redis.hgetall(run_key(run_id))
        return RunRecord.from_hash(raw) if raw else None

    async def render_rate(self, default: float) -> float:
        read_at, value = self._rate
        now = time.monotonic()
        if now - read_at > self.rate_ttl:
            raw = await self.redis.get(STEP_RATE)
            value = float(raw) if raw is not None else None
            self._rate = (now, value)
        return value if value is not None else default
