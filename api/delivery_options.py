"""Request fields and views about how a run is delivered rather than what it renders:
priority, start deadline, webhook, output destination, and the listing / batch envelopes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from storage.destinations import OUTPUT_MAX_LENGTH, OUTPUT_PATTERN
from storage.records import Priority

WebhookEventName = Literal["started", "completed", "failed", "canceled", "expired", "preview"]
DELIVERY_FIELDS = ("webhook_url", "webhook_events", "priority", "start_within", "output", "previews")


class DeliveryOptions(BaseModel):
    """Mixed into every submit body (any operation)."""

    webhook_url: str | None = Field(
        None, max_length=2000, description="http(s) URL called (Standard Webhooks signed) when the run changes status."
    )
    webhook_events: list[WebhookEventName] | None = Field(
        None, description="Which events to send; default: started, completed, failed, canceled, expired. `preview` "
        "(never by default) sends `run.preview` with each live preview, the picture inline.",
    )
    previews: bool = Field(
        True, description="Live previews while the run renders, where the deployment makes them "
        "(RENDERQ_PREVIEW_EVERY_STEPS): SSE `preview` events and `preview_url`. false: none for this run.",
    )
    priority: Priority = Field(
        Priority.normal, description="high / normal / low: separate queues, high always taken first."
    )
    start_within: float | None = Field(
        None, gt=0, le=7 * 86400, description="Seconds the run may wait in the queue; still queued after that, it ends `expired` without running."
    )
    output: str | None = Field(
        None,
        max_length=OUTPUT_MAX_LENGTH,
        pattern=OUTPUT_PATTERN,
        examples=["storage://my-bucket/renders/"],
        description="`storage://{destination}/{folder}/` (Claid): write the PNGs to a destination registered with "
        "POST /v1/destinations, as {prefix}{folder}{run_id}/{index}.png. The run then reports each image's "
        "object_uri, object_key and object_bucket, and no temporary URL or asset (the images are not kept here).",
    )


class WebhookView(BaseModel):
    url: str
    events: list[str]
    attempts: int = Field(0, description="Delivery attempts made so far, over all events.")
    last_status_code: int | None = Field(None, description="HTTP status of the last attempt; 0 when the receiver did not answer.")


class BatchRunView(BaseModel):
    run_id: str
    status: str
    progress: int


class BatchView(BaseModel):
    batch_id: str
    created_at: datetime
    expires_at: datetime
    total: int
    counts: dict[str, int] = Field(..., description="Runs per status.")
    progress: float = Field(..., description="Percent of the batch's work done (ended runs count 100).")
    estimated_time: float | None = Field(None, description="Seconds until every run should have ended; None once they have.")
    done: bool
    credits_estimated: float = Field(
        ..., description="Credits the batch's runs were estimated at (reserved at submit), all together; runs whose "
        "record has expired no longer count.",
    )
    credits_used: float = Field(
        ..., description="Credits charged so far: the sum of `credits_used` of the runs that have ended.",
    )
    webhook: WebhookView | None = None
    runs: list[BatchRunView]
    next_cursor: str | None = None


class BatchCreated(BaseModel):
    batch_id: str
    run_ids: list[str]
    total: int
