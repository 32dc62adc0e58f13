"""The run record: one Redis hash per run, the single source of truth about a run."""

from __future__ import annotations

import json
import secrets
import time
from enum import Enum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from core.problems import Problem

RUN_ID_PREFIX = "gen_"


def new_run_id() -> str:
    """96 random bits: unguessable, so a run id is not a handle anyone can enumerate."""
    return RUN_ID_PREFIX + secrets.token_hex(12)


class RunStatus(str, Enum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"  # asked to stop: never started, or stopped at a denoising step
    expired = "expired"  # still queued past its start deadline; never ran

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.queued, RunStatus.running)


class Priority(str, Enum):
    """Each priority has its own render queue; workers drain them in this order."""

    high = "high"
    normal = "normal"
    low = "low"


WebhookEvent = Literal["started", "completed", "failed", "canceled", "expired", "preview"]
FINAL_WEBHOOK_EVENTS: tuple[str, ...] = ("completed", "failed", "canceled", "expired")


class WebhookTarget(BaseModel):
    """Where a run (or batch) reports its status changes, and which ones."""

    url: str
    events: list[str] = Field(default_factory=lambda: ["started", *FINAL_WEBHOOK_EVENTS])


class StoredImage(BaseModel):
    """An image object of a run; the URL is signed when the run is read, never stored."""

    key: str
    width: int
    height: int
    seed: int
    content_type: str = "image/png"
    bytes: int = 0
    asset_id: str | None = None  # the image as an asset: feeds the next request
    thumbnail_key: str | None = None  # its gallery thumbnail (a WebP ≤ 256 px) in our store
    role: str = "image"  # else not a rendering (uncharged): "mask" of a search edit, "control" map of a ControlNet
    # Written to the tenant's own destination (`output`): `key` is in `object_bucket` there,
    # not in ours, so no URL is signed and no asset registered.
    object_bucket: str | None = None
    object_uri: str | None = None  # s3://{object_bucket}/{key}
    # Social formats: which platform format this image is (None for other operations).
    platform: str | None = None
    format_id: str | None = None
    format_name: str | None = None


class RunRecord(BaseModel):
    run_id: str
    status: RunStatus = RunStatus.queued
    operation: str = "text-to-image"
    model_id: str = ""
    loras: dict[str, float] = Field(default_factory=dict)
    request: dict[str, Any] = Field(default_factory=dict)
    progress: int = 0
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    expires_at: float = 0.0
    estimated_time: float | None = None
    attempt: int = 1
    worker: str | None = None
    tenant: str = Field("", description="Owner (the API key's tenant); other tenants see a 404.")
    request_id: str | None = Field(None, description="X-Request-ID of the submit, carried into worker logs.")
    images: list[StoredImage] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    error: Problem | None = None
    # The caller's side (issue 4): priority, batch, webhook, start deadline, cancel, retry.
    priority: Priority = Priority.normal
    batch_id: str | None = None
    webhook: WebhookTarget | None = None
    webhook_attempts: int = 0
    webhook_last_status: int | None = None  # HTTP status of the last attempt; 0: no answer
    start_deadline: float | None = None
    cancel_requested: bool = False
    retry_of: str | None = None
    output: str | None = None  # storage://{destination}/{folder}/: the images go to the tenant's bucket
    # Templates and style presets (issue 7): what was applied; `request` holds the final prompt.
    template_id: str | None = None
    style_preset: str | None = None
    input_prompt: str | None = None
    # Cost (storage/credits.py), in milli-credits: the estimate reserved at submit, whether it was
    # held against the tenant's balance, and once the run has ended what it was charged and
    # what the tenant had left right after.
    credits_estimate: int | None = None
    credits_held: bool = False
    credits_used: int | None = None
    credits_remaining: int | None = None
    # The worker pool whose queues it goes to (its model's, storage/models_catalog.py pool_of).
    pool: str = "default"
    # Live previews (storage/previews.py): whether the caller wants them, how many were published
    # (each one's id), and the step of the latest while the run is running.
    previews: bool = True
    preview_id: int = 0
    preview_step: int | None = None
    # Runs of one group render in one model call (storage/render_groups.py); None: always alone.
    render_group: str | None = None
    # Under fair share (storage/fair_share.py): the Redis list its messages go to (pool and
    # priority), which names the tenant's admitted and staged runs there. None: not admitted by it.
    queue: str | None = None
    # The request as its operation's typed object, when this process made the run (a submit):
    # admission prices it without reading `request` back. Never stored.
    typed_request: Any = Field(None, exclude=True, repr=False)
    # Its queue message as written at submit ((Redis list, payload)), for a run of a render group:
    # kept beside the run, so a worker that takes it as a companion can take the message off its
    # queue too. Never in the record itself.
    queue_message: tuple[str, str] | None = Field(None, exclude=True, repr=False)

    # Fields stored as JSON text inside the hash; the rest are plain strings.
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("request", "loras", "images", "timings", "error", "webhook")

    def to_hash(self) -> dict[str, str]:
        data = self.model_dump(mode="json")
        return {
            key: json.dumps(value) if key in self.JSON_FIELDS else str(value)
            for key, value in data.items()
            if value is not None
        }

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> "RunRecord":
        data: dict[str, Any] = {}
        for key, value in raw.items():
            data[key] = json.loads(value) if key in cls.JSON_FIELDS else value
        return cls.model_validate(data)
