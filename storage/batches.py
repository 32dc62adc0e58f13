"""Batch records: which runs were submitted together, and whether all of them have ended.

One hash per batch (`renderq:batch:{id}`: total, ended, webhook, …) and one list of its run ids
in submission order, both expiring with the runs. `ended` is counted by the storage layer as
each run reaches a final status (storage/run_events.py), which fires the batch webhook once.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis

from core import tenancy
from .records import WebhookTarget

BATCH_PREFIX = "renderq:batch:"


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def batch_key(batch_id: str) -> str:
    return BATCH_PREFIX + batch_id


def runs_key(batch_id: str) -> str:
    return BATCH_PREFIX + batch_id + ":runs"


class BatchStore:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds

    def create(self, pipe, batch_id: str, run_ids: list[str], created_at: float, webhook: WebhookTarget | None) -> float:
        """Write the batch inside the caller's transaction (the one that creates its runs)."""
        expires_at = created_at + self.retention_seconds
        fields: dict[str, Any] = {
            "batch_id": batch_id, "created_at": created_at, "expires_at": expires_at,
            "total": len(run_ids), "ended": 0, "webhook_attempts": 0, "tenant": tenancy.stamp(),
        }
        if webhook is not None:
            fields["webhook"] = webhook.model_dump_json()
        pipe.hset(batch_key(batch_id), mapping=fields)
        pipe.rpush(runs_key(batch_id), *run_ids)
        for key in (batch_key(batch_id), runs_key(batch_id)):
            pipe.expireat(key, int(expires_at) + 1)
        return expires_at

    def get(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(batch_key(batch_id))
        if not raw or not tenancy.visible(raw.get("tenant")):  # another tenant's batch does not exist
            return None
        raw["webhook"] = json.loads(raw["webhook"]) if raw.get("webhook") else None
        return raw

    def run_ids(self, batch_id: str, start: int = 0, stop: int = -1) -> list[str]:
        return self.redis.lrange(runs_key(batch_id), start, stop)

    def count_ended(self, batch_id: str) -> tuple[int, int]:
        """One more run of the batch has ended: (ended, total)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(batch_key(batch_id), "ended", 1)
            pipe.hget(batch_key(batch_id), "total")
            ended, total = pipe.execute()
        return int(ended), int(total or 0)

    def summary(self, batch_id: str) -> dict[str, Any]:
        raw = self.get(batch_id) or {}
        return {"batch_id": batch_id, "total": int(raw.get("total", 0)), "ended": int(raw.get("ended", 0)), "at": time.time()}
