"""In-process services for fast API unit tests: fakeredis, local disk, in-memory broker."""

from __future__ import annotations

from pathlib import Path

import fakeredis

from api.services import Services
from storage.local import LocalImageStore
from storage.runs import RunStore
from core.settings import Settings
from core.queue import make_celery


def unit_services(tmp_path: Path, **settings) -> Services:
    """`settings`: Settings fields to set (models_file, …)."""
    settings = Settings(embedded=True, storage="local", local_dir=tmp_path / "images", **settings)
    images = LocalImageStore(settings.local_dir, "http://testserver", "test-secret")
    images.prepare()
    return Services(
        settings=settings,
        runs=RunStore(fakeredis.FakeRedis(decode_responses=True), settings.retention_seconds),
        images=images,
        celery=make_celery(settings),
    )
