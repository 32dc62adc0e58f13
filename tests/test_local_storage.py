"""The local-disk backend: signed URLs that stop at their expiry, and the sweep."""

from __future__ import annotations

import os
import time

import pytest

from storage.images import url_lifetime
from storage.local import LocalImageStore
from core.settings import Settings


@pytest.fixture
def store(tmp_path) -> LocalImageStore:
    store = LocalImageStore(tmp_path / "images", "http://api.example", "secret")
    store.prepare()
    return store


def params(url: str) -> tuple[str, int, str]:
    path, query = url.split("?")
    fields = dict(part.split("=") for part in query.split("&"))
    return path.split("/v1/files/")[1], int(fields["expires"]), fields["signature"]


def test_a_signed_url_verifies_until_it_expires(store):
    store.put("gen_a/0.png", b"png", "image/png")
    key, expires, signature = params(store.signed_url("gen_a/0.png", 60))
    assert key == "gen_a/0.png"
    assert store.verify(key, expires, signature)
    assert not store.verify(key, expires, signature, now=expires)
    assert not store.verify("gen_b/0.png", expires, signature)
    assert not store.verify(key, expires + 3600, signature)  # extending the expiry breaks it


def test_keys_cannot_escape_the_directory(store):
    with pytest.raises(ValueError):
        store.path_of("../../etc/passwd")


def test_sweep_removes_only_expired_files(store):
    store.put("old/0.png", b"old", "image/png")
    store.put("new/0.png", b"new", "image/png")
    old = store.path_of("old/0.png")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep(older_than_seconds=3600) == 1
    assert not old.exists() and store.path_of("new/0.png").exists()


def test_url_lifetime_is_short_and_never_past_the_run_expiry():
    settings = Settings(url_ttl_seconds=900)
    now = 1_000_000.0
    assert url_lifetime(settings, run_expires_at=now + 86400, now=now) == 900
    assert url_lifetime(settings, run_expires_at=now + 100, now=now) == 100
    assert url_lifetime(settings, run_expires_at=now - 1, now=now) == 0
