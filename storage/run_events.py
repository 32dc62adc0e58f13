"""What happens whenever a run's status or progress is written: one place, in the storage layer.

- Published on the Redis channel `renderq:events:{run_id}` (Server-Sent Events read it).
- Kept in the queue indexes (storage/run_index.py).
- Filed as a webhook message when the run asked for that event (storage/webhooks.py).
- Counted towards its batch; the batch webhook is filed when the last run ends.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from .batches import BatchStore, batch_key
from .prices import credits
from .records import RunRecord, RunStatus, WebhookTarget
from .run_index import RunIndex
from .webhooks import WebhookStore

EVENTS_PREFIX = "renderq:events:"
# Webhook event for each status a run can move to (queued again after a dead worker: none).
WEBHOOK_EVENT_BY_STATUS = {
    RunStatus.running: "started",
    RunStatus.completed: "completed",
    RunStatus.failed: "failed",
    RunStatus.canceled: "canceled",
    RunStatus.expired: "expired",
}


def events_channel(run_id: str) -> str:
    return EVENTS_PREFIX + run_id


def run_summary(record: RunRecord) -> dict[str, Any]:
    """What events and webhooks say about a run; GET /v1/generations/{id} has the rest (image URLs)."""
    return {
        "run_id": record.run_id,
        "status": record.status.value,
        "progress": record.progress,
        "attempt": record.attempt,
        "priority": record.priority.value,
        "batch_id": record.batch_id,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "error": record.error.model_dump(mode="json", exclude_none=True) if record.error else None,
        "url": f"/v1/generations/{record.run_id}",
        "credits_used": credits(record.credits_used),
        "credits_remaining": credits(record.credits_remaining),
    }


class RunEvents:
    def __init__(self, client: redis.Redis, index: RunIndex, webhooks: WebhookStore, batches: BatchStore) -> None:
        self.redis = client
        self.index = index
        self.webhooks = webhooks
        self.batches = batches

    def status_event(self, pipe, record: RunRecord) -> None:
        """Queue, inside `pipe`, everything that follows a status write of `record`."""
        pipe.publish(events_channel(record.run_id), json.dumps({"type": "status"} | run_summary(record)))
        self.index.on_status(pipe, record)
        event = WEBHOOK_EVENT_BY_STATUS.get(record.status)
        if record.webhook is not None and event in record.webhook.events:
            self.webhooks.file(record.webhook.url, f"run.{event}", run_summary(record), "renderq:run:" + record.run_id, pipe=pipe)

    def status_changed(self, record: RunRecord) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            self.status_event(pipe, record)
            pipe.execute()
        if record.status.is_final and record.batch_id:
            ended, total = self.batches.count_ended(record.batch_id)
            if ended == total:
                batch = self.batches.get(record.batch_id)
                if batch and batch.get("webhook"):
                    target = WebhookTarget.model_validate(batch["webhook"])
                    self.webhooks.file(target.url, "batch.completed", self.batches.summary(record.batch_id), batch_key(record.batch_id))

    @staticmethod
    def progress(pipe, run_id: str, progress: int) -> None:
        """Added to the pipeline that writes the progress (storage/runs.py `report_progress`)."""
        pipe.publish(events_channel(run_id), json.dumps({"type": "progress", "run_id": run_id, "progress": progress}))
