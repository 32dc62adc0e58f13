"""A page of `GET /v1/generations`: the caller's runs, newest first.

It reads the caller's own index (storage/run_index.py: one per tenant, one per batch), so what
other tenants hold never costs a read: a page reads its index in chunks and each chunk's
records in one round trip. Without a status filter a chunk is the rest of the page; with one,
up to `scan_factor` index entries per run wanted are read before a short page (with its
cursor) is answered, so that a rare status costs pages rather than one slow request.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from core import tenancy

from .records import RunRecord, RunStatus
from .run_index import RunIndex, tenant_index

BATCH_INDEX = "renderq:index:batch:"
RUN_PREFIX = "renderq:run:"


@dataclass
class RunPage:
    records: list[RunRecord]
    next_cursor: str | None  # None: nothing older matches


@dataclass
class Filters:
    status: RunStatus | None = None
    batch_id: str | None = None
    since: float | None = None  # created at or after (epoch seconds)
    until: float | None = None  # created before


def list_runs(
    client: redis.Redis, index: RunIndex, filters: Filters, cursor: str | None, limit: int, scan_factor: int = 20
) -> RunPage:
    """The caller's (core/tenancy.py) runs matching `filters`, newest first, after `cursor`.
    Raises ValueError on a cursor this API did not write."""
    key = BATCH_INDEX + filters.batch_id if filters.batch_id else tenant_index(tenancy.stamp())
    chunk = limit if filters.status is None else min(limit * 4, 200)
    records: list[RunRecord] = []
    scanned, next_cursor = 0, None
    for rows in index.newest_first(key, cursor, filters.since, filters.until, chunk):
        with client.pipeline(transaction=False) as pipe:
            for run_id, _ in rows:
                pipe.hgetall(RUN_PREFIX + run_id)
            raws = pipe.execute()
        for (run_id, after), raw in zip(rows, raws):
            scanned += 1
            next_cursor = after
            if raw and tenancy.visible(raw.get("tenant")):  # expired: gone; a batch id of another tenant: none
                record = RunRecord.from_hash(raw)
                if filters.status is None or record.status == filters.status:
                    records.append(record)
            if len(records) >= limit or scanned >= limit * scan_factor:
                return RunPage(records, next_cursor)
    return RunPage(records, None)
