"""Image objects: picking the backend (S3-compatible, or local disk), and the signed URLs
handed out for them.

The interface every backend implements, and its error, are in storage/image_store.py, which
the backends import; they are re-exported here for callers that still take them from
storage.images (worker/tasks.py, api/services.py).
"""

from __future__ import annotations

import time

from core.settings import Settings
from .image_store import ImageStore, StorageUnavailable
from .local import LocalImageStore

__all__ = ["ImageStore", "RecentUrls", "StorageUnavailable", "make_image_store", "url_lifetime"]


def url_lifetime(settings: Settings, run_expires_at: float, now: float | None = None) -> int:
    """Seconds a URL signed now may live: short (url_ttl_seconds) and never past the run's
    expiry. 0 means the run has expired and no URL may be handed out."""
    remaining = int(run_expires_at - (now if now is not None else time.time()))
    return max(0, min(settings.url_ttl_seconds, remaining))


def make_image_store(settings: Settings) -> ImageStore:
    if settings.storage == "local":
        return LocalImageStore(settings.local_dir, settings.public_base_url, settings.url_secret.get_secret_value())
    # Imported only when chosen: boto3 takes half a second to import, which a process storing
    # on local disk (the embedded default) need not pay.
    from .s3 import S3ImageStore

    return S3ImageStore.from_settings(settings)


class RecentUrls:
    """Signed URLs, reused for a short while.

    Signing costs more than all the rest of a status read, and a caller polling a finished
    run several times a second needs no fresh signature each time. A reused URL keeps the
    expiry it was signed with, so it still lives at most `url_ttl_seconds` and never past its
    run; it is handed out only while it has most (`1 - reuse_fraction`) of its life ahead.
    """

    def __init__(self, store: ImageStore, reuse_fraction: float = 0.1, max_entries: int = 10_000) -> None:
        self.store = store
        self.reuse_fraction = reuse_fraction
        self.max_entries = max_entries
        self._entries: dict[tuple[str, int], tuple[str, float, float]] = {}

    def sign(self, key: str, lifetime: int, now: float) -> tuple[str, float]:
        """(URL, epoch it stops working) for `key`, valid for at most `lifetime` seconds."""
        entry = self._entries.get((key, lifetime))
        if entry is not None:
            url, signed_at, expires_at = entry
            if now - signed_at <= lifetime * self.reuse_fraction and expires_at <= now + lifetime:
                return url, expires_at
        url = self.store.signed_url(key, lifetime)
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # oldest first: dicts keep insertion order
        self._entries[(key, lifetime)] = (url, now, now + lifetime)
        return url, now + lifetime
