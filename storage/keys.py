"""API keys: created, listed, revoked (`renderq keys …`) and looked up by the API.

A key is `rq_<key_id>_<secret>` with 256 random bits of secret. Only its SHA-256 digest is
stored: for a key that long a fast hash is enough (no dictionary to attack, unlike a
password), and it keeps the lookup on every request to a single Redis read.

Redis layout (no TTL: keys live until revoked):
  renderq:apikey:<sha256 hex>  hash: key_id, tenant, name, created_at, revoked_at, limits
  renderq:apikeys              hash: key_id → sha256 hex (for list and revoke)
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import redis
from pydantic import BaseModel, Field

from .redis_ops import Batch, Op, run

KEY_PREFIX = "rq_"
RECORD_PREFIX = "renderq:apikey:"
INDEX = "renderq:apikeys"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def digest(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKey(BaseModel):
    """What is stored about a key: everything but the key itself."""

    key_id: str
    tenant: str
    name: str = ""
    created_at: float = Field(default_factory=time.time)
    revoked_at: float | None = None
    rate_limit: str | None = Field(None, description="Overrides the default request rate, e.g. '10/second'.")
    max_active_runs: int | None = Field(None, description="Overrides the default cap on queued + running runs.")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_hash(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items() if v is not None}


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(
        self, tenant: str, name: str = "", rate_limit: str | None = None, max_active_runs: int | None = None
    ) -> tuple[ApiKey, str]:
        """A new key for `tenant`; returns its record and the key itself (shown once, never stored)."""
        if not TENANT_PATTERN.match(tenant):
            raise ValueError("tenant: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if rate_limit is not None:
            from limits import parse

            parse(rate_limit)  # raises ValueError on nonsense, before it is stored
        key_id = secrets.token_hex(6)
        presented = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id=key_id, tenant=tenant, name=name, rate_limit=rate_limit, max_active_runs=max_active_runs)
        hashed = digest(presented)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + hashed, mapping=record.to_hash())
            pipe.hset(INDEX, key_id, hashed)
            pipe.execute()
        return record, presented

    def lookup(self, presented: str) -> ApiKey | None:
        return run(self.redis, self.lookup_op(presented))

    @staticmethod
    def lookup_op(presented: str) -> Op[ApiKey | None]:
        """The active key matching what a caller presented, or None."""
        if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
            return None
        (raw,) = yield Batch(lambda pipe: pipe.hgetall(RECORD_PREFIX + digest(presented)))
        if not raw:
            return None
        key = ApiKey.model_validate(raw)
        return key if key.active else None

    def list(self) -> list[ApiKey]:
        hashes = self.redis.hgetall(INDEX)
        with self.redis.pipeline(transaction=False) as pipe:
            for hashed in hashes.values():
                pipe.hgetall(RECORD_PREFIX + hashed)
            rows = pipe.execute()
        return sorted((ApiKey.model_validate(row) for row in rows if row), key=lambda key: key.created_at)

    def revoke(self, key_id: str) -> bool:
        """Revoke at once (the next request with it is refused); False if no such active key."""
        hashed = self.redis.hget(INDEX, key_id)
        if hashed is None or not self.redis.exists(RECORD_PREFIX + hashed):
            return False
        if self.redis.hget(RECORD_PREFIX + hashed, "revoked_at"):
            return False
        self.redis.hset(RECORD_PREFIX + hashed, "revoked_at", str(time.time()))
        return True

    def count_active(self) -> int:
        return sum(1 for key in self.list() if key.active)
