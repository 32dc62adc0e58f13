"""Image objects on local disk, served by the API at HMAC-signed, expiring URLs.

The embedded default's backend: no object store to run. A URL carries its expiry and a
signature over key and expiry, so it stops working at that second like a presigned S3 URL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path
from urllib.parse import quote

FILES_ROUTE = "/v1/files/"


def sign(secret: str, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class LocalImageStore:
    def __init__(self, directory: Path, public_base_url: str, secret: str) -> None:
        self.directory = Path(directory)
        self.public_base_url = public_base_url.rstrip("/")
        self.secret = secret

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        path = (self.directory / key).resolve()
        if self.directory.resolve() not in path.parents:
            raise ValueError("key escapes the storage directory")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file.
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)

    def get(self, key: str) -> bytes:
        path = self.path_of(key)
        if not path.is_file():
            raise KeyError(key)
        return path.read_bytes()

    def signed_url(self, key: str, expires_in: int) -> str:
        expires = int(time.time()) + expires_in
        signature = sign(self.secret, key, expires)
        return f"{self.public_base_url}{FILES_ROUTE}{quote(key)}?expires={expires}&signature={signature}"

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        if (now if now is not None else time.time()) >= expires:
            return False
        return hmac.compare_digest(sign(self.secret, key, expires), signature)

    def check(self) -> None:
        if not os.access(self.directory, os.W_OK):
            raise OSError(f"{self.directory} is not writable")

    def sweep(self, older_than_seconds: float, now: float | None = None) -> int:
        """Delete files older than the retention; returns how many went."""
        cutoff = (now if now is not None else time.time()) - older_than_seconds
        removed = 0
        for path in self.directory.rglob("*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
