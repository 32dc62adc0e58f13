"""A small Python client for the renderq API, sync and async, on httpx.

    from client.client import RenderqClient
    with RenderqClient("http://127.0.0.1:8000") as rq:
        run = rq.submit("a lighthouse at dusk", width=512, height=512, wait=30)
        run = rq.wait(run["run_id"])             # polls with backoff until the run ends
        paths = rq.download(run, "out/")

Errors are `RenderqError` with the problem document in `.problem`; a run id answers
`RunExpired` (410) once the run has expired, `NotFound` (404) when it never existed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx

FINAL = ("completed", "failed", "canceled", "expired")


class RenderqError(Exception):
    """The API answered with a problem document; `.problem` holds it."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(f"{problem.get('status')} {problem.get('title')}: {problem.get('detail')}")
        self.problem = problem


class NotFound(RenderqError):
    """404: no such run (or batch, asset, …): never existed, another tenant's, or a run expired over 7 days ago."""


class RunExpired(RenderqError):
    """410 Gone: the run existed but has expired (its record and images are gone, 24 h after it
    was created); the id answers this for 7 days, then 404. Submit the request again to render it."""


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"status": response.status_code, "title": response.reason_phrase, "detail": response.text[:200]}
        raise {404: NotFound, 410: RunExpired}.get(response.status_code, RenderqError)(problem)
    return response.json()


def _submit_args(prompt: str | None, wait: float | None, fields: dict[str, Any]) -> tuple[dict, dict]:
    body = ({"prompt": prompt} if prompt is not None else {}) | {k: v for k, v in fields.items() if v is not None}
    headers = {"Prefer": f"wait={wait:g}"} if wait else {}
    return body, headers


def image_paths(run: dict[str, Any], out_dir: Path) -> list[tuple[str, Path]]:
    """(url, path) of each image: `<run_id>_<i>.png`, so a rerun finds what it already has.
    Images written to an `output` destination have no URL (they are in the caller's bucket)."""
    return [
        (image["url"], out_dir / f"{run['run_id']}_{index}.png")
        for index, image in enumerate(run.get("images", [])) if image.get("url")
    ]


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The API key header: `api_key`, else $RENDERQ_API_KEY, else none (`renderq dev`)."""
    key = api_key or os.environ.get("RENDERQ_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


class RenderqClient:
    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30, http: httpx.Client | None = None,
        api_key: str | None = None,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout, headers=auth_headers(api_key))

    def __enter__(self) -> "RenderqClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def submit(self, prompt: str | None = None, wait: float | None = None, **fields) -> dict[str, Any]:
        """POST /v1/generations; `wait` sends `Prefer: wait=N` (the run comes back finished if it
        ends within N seconds)."""
        body, headers = _submit_args(prompt, wait, fields)
        return _check(self.http.post("/v1/generations", json=body, headers=headers))

    def get(self, run_id: str) -> dict[str, Any]:
        return _check(self.http.get(f"/v1/generations/{run_id}"))

    def cancel(self, run_id: str) -> dict[str, Any]:
        return _check(self.http.post(f"/v1/generations/{run_id}/cancel"))

    def retry(self, run_id: str) -> dict[str, Any]:
        return _check(self.http.post(f"/v1/generations/{run_id}/retry"))

    def list(self, **params) -> dict[str, Any]:
        return _check(self.http.get("/v1/generations", params={k: v for k, v in params.items() if v is not None}))

    def wait(
        self, run_id: str, timeout: float | None = None, on_update: Callable[[dict], None] | None = None,
        poll: float = 0.2, max_poll: float = 2.0,
    ) -> dict[str, Any]:
        """Poll until the run ends, backing off from `poll` to `max_poll` seconds while nothing changes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay, last = poll, None
        while True:
            run = self.get(run_id)
            state = (run["status"], run["progress"])
            if on_update is not None and state != last:
                on_update(run)
            if run["status"] in FINAL:
                return run
            delay = poll if state != last else min(delay * 1.5, max_poll)
            last = state
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout}s")
            time.sleep(delay)

    def events(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Server-Sent Events of a run: ('status' | 'progress' | 'run', data), until it ends."""
        with self.http.stream("GET", f"/v1/generations/{run_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                _check(response)
            yield from parse_sse(response.iter_lines())

    def batch(self, requests: list[dict[str, Any]], webhook_url: str | None = None) -> dict[str, Any]:
        body: Any = {"requests": requests, "webhook_url": webhook_url} if webhook_url else requests
        return _check(self.http.post("/v1/batches", json=body))

    def get_batch(self, batch_id: str, limit: int = 1000, cursor: str | None = None) -> dict[str, Any]:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return _check(self.http.get(f"/v1/batches/{batch_id}", params=params))

    def download(self, run: dict[str, Any], out_dir: str | Path) -> list[Path]:
        """Write the run's PNGs into `out_dir` (skipping files already there); returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for url, path in image_paths(run, out):
            if not path.exists():
                response = httpx.get(url, timeout=60)
                response.raise_for_status()
                partial = path.with_suffix(".part")
                partial.write_bytes(response.content)
                partial.replace(path)  # never a half-written PNG under the final name
            paths.append(path)
        return paths


class AsyncRenderqClient:
    """The same calls for asyncio code."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30, http: httpx.AsyncClient | None = None,
        api_key: str | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=auth_headers(api_key))

    async def __aenter__(self) -> "AsyncRenderqClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def submit(self, prompt: str | None = None, wait: float | None = None, **fields) -> dict[str, Any]:
        body, headers = _submit_args(prompt, wait, fields)
        return _check(await self.http.post("/v1/generations", json=body, headers=headers))

    async def get(self, run_id: str) -> dict[str, Any]:
        return _check(await self.http.get(f"/v1/generations/{run_id}"))

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return _check(await self.http.post(f"/v1/generations/{run_id}/cancel"))

    async def retry(self, run_id: str) -> dict[str, Any]:
        return _check(await self.http.post(f"/v1/generations/{run_id}/retry"))

    async def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.2, max_poll: float = 2.0) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay, last = poll, None
        while True:
            run = await self.get(run_id)
            if run["status"] in FINAL:
                return run
            state = (run["status"], run["progress"])
            delay = poll if state != last else min(delay * 1.5, max_poll)
            last = state
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout}s")
            await asyncio.sleep(delay)

    async def events(self, run_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async with self.http.stream("GET", f"/v1/generations/{run_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                _check(response)
            event, data = "message", []
            async for line in response.aiter_lines():
                if line:
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                elif data:
                    yield event, json.loads("\n".join(data))
                    event, data = "message", []

    async def batch(self, requests: list[dict[str, Any]], webhook_url: str | None = None) -> dict[str, Any]:
        body: Any = {"requests": requests, "webhook_url": webhook_url} if webhook_url else requests
        return _check(await self.http.post("/v1/batches", json=body))

    async def get_batch(self, batch_id: str, limit: int = 1000, cursor: str | None = None) -> dict[str, Any]:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return _check(await self.http.get(f"/v1/batches/{batch_id}", params=params))

    async def download(self, run: dict[str, Any], out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        async with httpx.AsyncClient(timeout=60) as http:
            for url, path in image_paths(run, out):
                if not path.exists():
                    response = await http.get(url)
                    response.raise_for_status()
                    partial = path.with_suffix(".part")
                    partial.write_bytes(response.content)
                    partial.replace(path)
                paths.append(path)
        return paths
