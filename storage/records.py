"""The run record: one Redis hash per run, the single source of truth about a run."""

from __future__ import annotations

import json
import secrets
import time
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from .problems import Problem

RUN_ID_PREFIX = "gen_"


def new_run_id() -> str:
    """96 random bits: unguessable, so a run id is not a handle anyone can enumerate."""
    return RUN_ID_PREFIX + secrets.token_hex(12)


class RunStatus(str, Enum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.completed, RunStatus.failed)


class StoredImage(BaseModel):
    """An image object of a run; the URL is signed when the run is read, never stored."""

    key: str
    width: int
    height: int
    seed: int
    content_type: str = "image/png"
    bytes: int = 0
    asset_id: str | None = None  # the image as an asset: feeds the next request


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
    images: list[StoredImage] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    error: Problem | None = None

    # Fields stored as JSON text inside the hash; the rest are plain strings.
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("request", "loras", "images", "timings", "error")

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
