"""What every image backend is: the `ImageStore` interface, and the error it raises when an
image cannot be written.

A module of its own, importing no backend, so that the backends (storage/s3.py,
storage/local.py) and the factory that picks one (storage/images.py) can all import it
without an import cycle.
"""

from __future__ import annotations

from typing import Protocol


class StorageUnavailable(Exception):
    """An image could not be written even after the backend's retries; the run fails with
    the `storage-failed` problem, and the worker carries on with the next run."""


class ImageStore(Protocol):
    def prepare(self) -> None:
        """Create what the backend needs (bucket, lifecycle rule, directory); idempotent."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store an object under `key`; raise StorageUnavailable when that cannot be done."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError when there are none."""

    def signed_url(self, key: str, expires_in: int) -> str:
        """A URL anyone may GET for `expires_in` seconds, then never again."""

    def check(self) -> None:
        """Raise if the backend cannot be reached."""
