"""Idempotency-Key records: the first answer to a POST, kept 24 hours and replayed to a retry.

One Redis string per (tenant, key): `SET NX` claims it while the first request runs (a short
TTL, so a crashed API frees it), then the answer replaces it for the full retention.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import redis

PREFIX = "renderq:idem:"
PENDING_TTL_SECONDS = 60


@dataclass
class Stored:
    fingerprint: str
    done: bool
    status: int = 0
    headers: list[tuple[str, str]] | None = None
    body: bytes = b""


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of what was asked; JSON is canonicalised so key order and spacing do not count."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class IdempotencyStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _key(tenant: str, idempotency_key: str) -> str:
        return PREFIX + hashlib.sha256(f"{tenant}\n{idempotency_key}".encode()).hexdigest()

    def begin(self, tenant: str, idempotency_key: str, fp: str) -> Stored | None:
        """Claim the key for this request (None), or what an earlier request left there."""
        key = self._key(tenant, idempotency_key)
        pending = json.dumps({"fingerprint": fp, "done": False})
        if self.redis.set(key, pending, nx=True, ex=PENDING_TTL_SECONDS):
            return None
        raw = self.redis.get(key)
        if raw is None:  # expired between the two calls: try once more
            return None if self.redis.set(key, pending, nx=True, ex=PENDING_TTL_SECONDS) else Stored(fp, False)
        data = json.loads(raw)
        return Stored(
            fingerprint=data["fingerprint"],
            done=data["done"],
            status=data.get("status", 0),
            headers=[tuple(pair) for pair in data.get("headers", [])],
            body=base64.b64decode(data.get("body", "")),
        )

    def finish(self, tenant: str, idempotency_key: str, fp: str, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        value = {"fingerprint": fp, "done": True, "status": status, "headers": headers, "body": base64.b64encode(body).decode()}
        self.redis.set(self._key(tenant, idempotency_key), json.dumps(value), ex=self.ttl_seconds)

    def abandon(self, tenant: str, idempotency_key: str) -> None:
        """Forget a claim whose request failed, so the caller can retry with the same key."""
        self.redis.delete(self._key(tenant, idempotency_key))
