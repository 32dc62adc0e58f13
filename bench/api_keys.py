"""The API with API keys on (the production path) beside the same API with keys off.

Two `renderq api` processes on one stack (same Redis DB, same S3): one with
RENDERQ_AUTH_DISABLED=true, as the rest of the benchmark runs, one with keys required, called
with `Authorization: Bearer <key>` (wrk -H). The key is created with limits no load here reaches
(1,000,000 requests/s, 10⁹ active runs), so nothing is refused and each keyed request pays what
production pays for a key that is within its limits: the key lookup, the rate-limit count and,
on submit, the reservation of an active-run slot. Rounds alternate which API goes first."""

from __future__ import annotations

import shutil

import httpx

from devkit.procs import start_api
from storage.keys import KeyStore
from storage.quotas import ACTIVE_PREFIX

from .api_load import SUBMIT, _wrk
from .stack import TINY_JOB, Infra, Stack, wait_drained
from .stats import median

ENDPOINTS = ("submit", "status_completed", "status_queued")
MODES = ("off", "on")


def api_keys(infra: Infra, seconds: float, connections: int, rounds: int) -> dict:
    if shutil.which("wrk") is None:
        raise FileNotFoundError("wrk (apt-get install wrk)")
    stack = infra.stack("api-keys")
    try:
        # First: an API that requires keys refuses to start while none exists.
        _, key = _new_key(stack)
        apis = {mode: _api(stack, disabled) for mode, disabled in zip(MODES, ("true", "false"))}
        headers = {"off": {}, "on": {"Authorization": f"Bearer {key}"}}
        reads = _runs_to_read(stack, apis, headers)
        urls = {mode: {"submit": (f"{url}/v1/generations", SUBMIT),
                       "status_completed": (f"{url}/v1/generations/{reads[mode][0]}", ""),
                       "status_queued": (f"{url}/v1/generations/{reads[mode][1]}", "")}
                for mode, (_, url) in apis.items()}
        for mode in MODES:  # warm-up
            _wrk(urls[mode]["status_completed"][0], "", 2, connections, headers=headers[mode])
        measured: dict = {mode: {endpoint: [] for endpoint in ENDPOINTS} for mode in MODES}
        for r in range(rounds):
            for endpoint in ENDPOINTS:
                for mode in MODES if r % 2 == 0 else MODES[::-1]:
                    url, script = urls[mode][endpoint]
                    if endpoint == "submit" and mode == "on":
                        measured[mode][endpoint].append(_keyed_submits(stack, url, seconds, connections, apis[mode][0].pid))
                    else:
                        measured[mode][endpoint].append(_wrk(url, script, seconds, connections, apis[mode][0].pid, headers[mode]))
    finally:
        stack.stop()
    return keys_figures(measured, connections, seconds)


def _new_key(stack: Stack):
    return KeyStore(stack.redis()).create("bench", name="bench: keys on", rate_limit="1000000/second", max_active_runs=10**9)


def _keyed_submits(stack: Stack, url: str, seconds: float, connections: int, pid: int) -> dict:
    """Submits under a fresh key, so each round starts with none of its runs in flight: a submit's
    reservation reads the status of every run the key has queued or running (storage/quotas.py),
    and no worker drains them here. How many it had at the end comes with the figures."""
    record, key = _new_key(stack)
    result = _wrk(url, SUBMIT, seconds, connections, pid, {"Authorization": f"Bearer {key}"})
    return result | {"active_runs_after": stack.redis().zcard(ACTIVE_PREFIX + record.key_id)}


def _api(stack: Stack, auth_disabled: str):
    proc, url = start_api(stack.env | {"RENDERQ_LOG_LEVEL": "WARNING", "RENDERQ_AUTH_DISABLED": auth_disabled}, stack.workdir)
    stack.procs.append(proc)
    return proc, url


def _runs_to_read(stack: Stack, apis: dict, headers: dict) -> dict[str, tuple[str, str]]:
    """Per API, a completed run (its read signs a URL) and a queued one, each submitted through
    that API (a keyed caller reads its own tenant's runs)."""
    clients = {mode: httpx.Client(base_url=url, headers=headers[mode], timeout=30) for mode, (_, url) in apis.items()}
    try:
        worker = stack.worker("api-keys")
        completed = {mode: _submit(client) for mode, client in clients.items()}
        wait_drained(stack, list(completed.values()), 120)
        stack.drop(worker)  # the APIs alone on the CPU from here on
        return {mode: (completed[mode], _submit(client)) for mode, client in clients.items()}
    finally:
        for client in clients.values():
            client.close()


def _submit(client: httpx.Client) -> str:
    response = client.post("/v1/generations", json=TINY_JOB)
    response.raise_for_status()
    return response.json()["run_id"]


def keys_figures(measured: dict, connections: int, seconds: float) -> dict:
    """Per mode and endpoint, the rounds pooled (requests ÷ seconds, ÷ API CPU seconds; median
    p50, worst p99, non-2xx summed); per endpoint what keys cost."""
    figures: dict = {"connections": connections, "seconds": seconds, "rounds": len(measured["off"]["submit"])}
    for mode in MODES:
        figures[mode] = {}
        for endpoint, runs in measured[mode].items():
            requests = sum(r["requests"] for r in runs)
            figures[mode][endpoint] = {
                "per_second": requests / sum(r["duration_us"] / 1e6 for r in runs),
                "per_cpu_second": requests / sum(r["api_cpu_seconds"] for r in runs),
                "p50_ms": median([r["p50_ms"] for r in runs]),
                "p99_ms": max(r["p99_ms"] for r in runs),
                "non_2xx": sum(r["non_2xx"] for r in runs),
                "socket_errors": sum(r["socket_errors"] for r in runs),
                "active_runs_after": [r["active_runs_after"] for r in runs if "active_runs_after" in r],
                "rounds": runs,
            }
    figures["cost"] = {
        endpoint: {
            "wall_ratio": figures["on"][endpoint]["per_second"] / figures["off"][endpoint]["per_second"],
            "cpu_ratio": figures["on"][endpoint]["per_cpu_second"] / figures["off"][endpoint]["per_cpu_second"],
            "cpu_us_per_request": 1e6 / figures["on"][endpoint]["per_cpu_second"] - 1e6 / figures["off"][endpoint]["per_cpu_second"],
        }
        for endpoint in ENDPOINTS
    }
    return figures
