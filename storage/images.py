"""Image objects: one interface, two backends (S3-compatible, or local disk)."""

from __future__ import annotations

import time
from typing import Protocol

from .settings import Settings


class ImageStore(Protocol):
    def prepare(self) -> None:
        """Create what the backend needs (bucket, lifecycle rule, directory); idempotent."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store an object under `key`."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError when there are none."""

    def signed_url(self, key: str, expires_in: int) -> str:
        """A URL anyone may GET for `expires_in` seconds, then never again."""

    def check(self) -> None:
        """Raise if the backend cannot be reached."""


def url_lifetime(settings: Settings, run_expires_at: float, now: float | None = None) -> int:
    """Seconds a URL signed now may live: short (url_ttl_seconds) and never past the run's
    expiry. 0 means the run has expired and no URL may be handed out."""
    remaining = int(run_expires_at - (now if now is not None else time.time()))
    return max(0, min(settings.url_ttl_seconds, remaining))


def make_image_store(settings: Settings) -> ImageStore:
    if settings.storage == "local":
        from .local import LocalImageStore

        return LocalImageStore(settings.local_dir, settings.public_base_url, settings.url_secret.get_secret_value())
    from .s3 import S3ImageStore

    return S3ImageStore.from_settings(settings)
