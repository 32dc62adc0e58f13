"""Output destinations: a tenant's own S3-compatible buckets, where a run with
`output: "storage://{name}/{folder}/"` (Claid's `output`) writes its PNGs instead of ours.

A run's image `i` goes to `{prefix}{folder}{run_id}/{i}.png` in the destination's bucket: the
run id is unguessable and unique, so two runs never overwrite each other, and a redelivered
run overwrites its own objects rather than adding more.

Credentials are encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) under
RENDERQ_SECRETS_KEY; a comma-separated list of keys lets an operator rotate (the first
encrypts, any decrypts). Only the last four characters of the access key id stay in clear
(none when it is shorter than 12), for the views; the secret never leaves this module except
to sign S3 requests.

The endpoint is the caller's choice, so it is checked like a webhook URL (public addresses
only, storage/webhook_targets.py) at registration and again before every write: the worker
must not become a way to reach the cluster's private network.

Redis layout (no TTL: a destination lives until it is deleted):
  renderq:destination:{tenant}:{name}  hash: the Destination fields
  renderq:destinations:{tenant}        set of the tenant's destination names
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Literal

import redis
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, Field

from .webhook_targets import UnsafeWebhookUrl, check_webhook_url

RECORD_PREFIX = "renderq:destination:"
INDEX_PREFIX = "renderq:destinations:"

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# S3's safe key characters; a folder segment may not start with "." (no "." or ".." segments).
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9!_.*'()-]{0,127}"
OUTPUT_PATTERN = rf"^storage://[a-z0-9][a-z0-9_-]{{0,62}}(/{_SEGMENT})*/?$"
_OUTPUT = re.compile(OUTPUT_PATTERN)
OUTPUT_MAX_LENGTH = 512
CHECK_OBJECT = ".renderq-write-check"  # written (and deleted if allowed) at registration


class DestinationFailed(Exception):
    """A destination could not be used (gone, unsafe, refused, unreachable); the message says why."""


class DestinationsDisabled(DestinationFailed):
    """This process has no RENDERQ_SECRETS_KEY, so it can neither keep nor use credentials."""


def parse_output(uri: str) -> tuple[str, str]:
    """(destination name, folder) of `storage://{name}/{folder}/`; the folder is "" or ends in "/"."""
    if len(uri) > OUTPUT_MAX_LENGTH or not _OUTPUT.match(uri):
        raise ValueError("output must look like storage://{destination}/{folder}/")
    name, _, folder = uri[len("storage://"):].partition("/")
    folder = folder.rstrip("/")
    return name, f"{folder}/" if folder else ""


class Destination(BaseModel):
    """What is stored about a destination; `credentials` is a Fernet token."""

    name: str
    tenant: str = ""
    bucket: str
    prefix: str = ""  # "" or ending in "/"
    endpoint_url: str
    region: str = "us-east-1"
    addressing_style: Literal["path", "virtual"] = "path"
    access_key_hint: str = Field("", description="Last four characters of the access key id (none of a short one).")
    credentials: str
    created_at: float = Field(default_factory=time.time)


class Vault:
    """Encrypts and decrypts credentials with the deployment's secrets key(s)."""

    def __init__(self, keys: str | None) -> None:
        parts = [key.strip() for key in (keys or "").split(",") if key.strip()]
        self._fernet = MultiFernet([Fernet(key) for key in parts]) if parts else None

    @classmethod
    def from_settings(cls, settings) -> "Vault":
        return cls(settings.secrets_key.get_secret_value() if settings.secrets_key else None)

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise DestinationsDisabled(
                "this deployment has no RENDERQ_SECRETS_KEY, so it cannot keep destination credentials "
                "(generate one with `python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`)"
            )
        return self._fernet

    def seal(self, access_key_id: str, secret_access_key: str) -> str:
        plain = json.dumps({"access_key_id": access_key_id, "secret_access_key": secret_access_key})
        return self._require().encrypt(plain.encode()).decode()

    def open(self, token: str) -> tuple[str, str]:
        try:
            plain = json.loads(self._require().decrypt(token.encode()))
        except InvalidToken:
            raise DestinationFailed("its credentials cannot be decrypted: RENDERQ_SECRETS_KEY is not the key they were stored with") from None
        return plain["access_key_id"], plain["secret_access_key"]


class DestinationStore:
    """A tenant's destinations in Redis. Every method takes the tenant: the API passes the
    caller's, the worker the run's."""

    def __init__(self, client: redis.Redis, vault: Vault) -> None:
        self.redis, self.vault = client, vault

    def create(self, destination: Destination) -> bool:
        """Store a new destination; False (nothing written) if the tenant already has that name."""
        key = _record_key(destination.tenant, destination.name)
        if not self.redis.hsetnx(key, "name", destination.name):  # claims the name; reads see it once complete
            return False
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_to_hash(destination))
            pipe.sadd(INDEX_PREFIX + destination.tenant, destination.name)
            pipe.execute()
        return True

    def get(self, tenant: str, name: str) -> Destination | None:
        raw = self.redis.hgetall(_record_key(tenant, name))
        return Destination.model_validate(raw) if raw.get("credentials") else None

    def list(self, tenant: str) -> list[Destination]:
        names = sorted(self.redis.smembers(INDEX_PREFIX + tenant))
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(_record_key(tenant, name))
            rows = pipe.execute()
        return [Destination.model_validate(row) for row in rows if row.get("credentials")]

    def delete(self, tenant: str, name: str) -> bool:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_record_key(tenant, name))
            pipe.srem(INDEX_PREFIX + tenant, name)
            deleted, _ = pipe.execute()
        return bool(deleted)


def _record_key(tenant: str, name: str) -> str:
    return f"{RECORD_PREFIX}{tenant}:{name}"


def _to_hash(destination: Destination) -> dict[str, str]:
    return {k: str(v) for k, v in destination.model_dump().items()}


class DestinationClients:
    """S3 clients of destinations, made with storage/s3.py's `make_s3_client`: one per
    destination, kept while its stored record is unchanged (a re-registered destination has
    a new credentials token, so a new client)."""

    def __init__(self, store: DestinationStore, allow_private: bool, max_attempts: int, timeout: float = 10) -> None:
        self.store, self.allow_private, self.max_attempts, self.timeout = store, allow_private, max_attempts, timeout
        self._clients: dict[tuple[str, str], tuple[str, object]] = {}
        self._lock = threading.Lock()

    def client_for(self, destination: Destination):
        """Raise DestinationFailed if the endpoint is not (or no longer) safe to call."""
        try:
            check_webhook_url(destination.endpoint_url, self.allow_private, what="endpoint")
        except UnsafeWebhookUrl as exc:
            raise DestinationFailed(f"destination {destination.name!r}: endpoint_url not allowed: {exc}") from exc
        cache_key = (destination.tenant, destination.name)
        with self._lock:
            cached = self._clients.get(cache_key)
            if cached is not None and cached[0] == destination.credentials:
                return cached[1]
        from .s3 import make_s3_client

        access_key_id, secret = self.store.vault.open(destination.credentials)
        try:
            client = make_s3_client(
                destination.endpoint_url, destination.region, access_key_id, secret, max_attempts=self.max_attempts,
                addressing_style=destination.addressing_style, read_timeout=self.timeout,
            )
        except ValueError as exc:  # botocore's "Invalid endpoint"
            raise DestinationFailed(f"destination {destination.name!r}: endpoint_url: {exc}") from exc
        with self._lock:
            self._clients[cache_key] = (destination.credentials, client)
        return client

    def target(self, tenant: str, output: str) -> "OutputTarget":
        """Where a run of `tenant` with this `output` writes; DestinationFailed if it cannot."""
        name, folder = parse_output(output)
        destination = self.store.get(tenant, name)
        if destination is None:
            raise DestinationFailed(f"destination {name!r} no longer exists")
        return OutputTarget(destination, folder, self.client_for(destination))

    def check(self, destination: Destination) -> None:
        """The registration check: the bucket exists (HEAD; a 403 passes, a write-only key may
        not list), a test write succeeds (what a run needs), and the test object is deleted
        if the key may. Raise DestinationFailed if not. The HEAD also keeps stores that
        create buckets on first write (SeaweedFS) from turning a typo into a new bucket."""
        client = self.client_for(destination)
        key = destination.prefix + CHECK_OBJECT
        try:
            client.head_bucket(Bucket=destination.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                raise DestinationFailed(f"the bucket {destination.bucket!r} does not exist at {destination.endpoint_url}") from exc
        except BotoCoreError as exc:
            raise DestinationFailed(f"the test write to s3://{destination.bucket}/{key} failed: {describe(exc)}") from exc
        try:
            client.put_object(Bucket=destination.bucket, Key=key, Body=b"", ContentType="text/plain")
        except (BotoCoreError, ClientError) as exc:
            raise DestinationFailed(f"the test write to s3://{destination.bucket}/{key} failed: {describe(exc)}") from exc
        try:
            client.delete_object(Bucket=destination.bucket, Key=key)
        except (BotoCoreError, ClientError):
            pass  # a key allowed to write but not delete is fine for renderq


class OutputTarget:
    """One run's output: a destination and the folder in it."""

    def __init__(self, destination: Destination, folder: str, client) -> None:
        self.destination, self.folder, self.client = destination, folder, client

    def put(self, name: str, data: bytes, content_type: str) -> dict[str, str]:
        """Write `{prefix}{folder}{name}`; the StoredImage fields that say where it went."""
        bucket, key = self.destination.bucket, f"{self.destination.prefix}{self.folder}{name}"
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise DestinationFailed(f"could not write s3://{bucket}/{key} (destination {self.destination.name!r}): {describe(exc)}") from exc
        return {"key": key, "object_bucket": bucket, "object_uri": f"s3://{bucket}/{key}"}


def describe(exc: BaseException) -> str:
    """S3's error code and message, or botocore's own message: what a caller can act on."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}: {error.get('Message') or 'refused'}"
    return str(exc)
