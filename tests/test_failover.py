"""Redis failover through Sentinel, on loopback: a primary (AOF everysec), one replica and three
sentinels (down-after-milliseconds 1000), SeaweedFS, an API and a worker that reach Redis and
the broker only through the sentinels (RENDERQ_REDIS_URL=redis+sentinel://...). Callers keep
submitting and polling while the primary is killed (SIGKILL): the API answers 202, 200 or a
503 problem with Retry-After, never a 500 or a dropped connection, recovers by itself once the
replica is elected, and every run it answered 202 for completes exactly once."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
import redis

from devkit.procs import Proc, start_redis, start_sentinels, wait_until
from storage.redis_client import redis_for
from tests.conftest import Stack, make_stack

pytestmark = pytest.mark.integration

SUBMIT_BEFORE = 2.0  # seconds of traffic before the kill
SUBMIT_AFTER_RECOVERY = 2.0  # and after the first 202 that follows it


class SentinelStack(Stack):
    def redis(self):
        return redis_for(self.env["RENDERQ_REDIS_URL"], decode_responses=True, socket_timeout=5)


@dataclass
class Traffic:
    """What the callers saw: every answer's status (and problem type), in order."""

    stack: Stack
    accepted: list[str] = field(default_factory=list)  # run ids answered 202
    answers: list[tuple[float, str, int, str]] = field(default_factory=list)  # (time, method, status, type)
    broken: list[str] = field(default_factory=list)  # what was not an HTTP answer, or a bad 503
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, method: str, response: httpx.Response) -> None:
        kind = ""
        if response.status_code == 503:
            body = response.json()
            kind = body.get("type", "")
            if response.headers.get("content-type") != "application/problem+json" or not response.headers.get("retry-after"):
                self.broken.append(f"{method} 503 without a problem document and Retry-After: {response.headers}")
        self.answers.append((time.monotonic(), method, response.status_code, kind))

    def submit_and_poll(self) -> None:
        """A caller polling the last run it was answered 202 for every 0.1 s, and submitting a
        small run every 0.4 s (what renders on one CPU worker while the test lasts)."""
        with self.stack.client() as api:
            for number in itertools.count():
                if self.stop.is_set():
                    return
                try:
                    if number % 4 == 0:
                        body = {"prompt": f"a harbour {number}", "width": 64, "height": 64, "num_inference_steps": 2,
                                "seed": number}
                        response = api.post("/v1/generations", json=body)
                        self.record("POST", response)
                        if response.status_code == 202:
                            self.accepted.append(response.json()["run_id"])
                    elif self.accepted:
                        self.record("GET", api.get(f"/v1/generations/{self.accepted[-1]}"))
                except httpx.HTTPError as exc:  # a reset connection, a timeout: never acceptable
                    self.broken.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.1)


@pytest.fixture
def failover_stack(tmp_path_factory, tiny_model, s3_endpoint):
    workdir = tmp_path_factory.mktemp("failover")
    for name in ("primary", "replica", "sentinels"):
        (workdir / name).mkdir()
    primary, primary_url = start_redis(workdir / "primary", persistent=True)
    primary_port = int(primary_url.rsplit(":", 1)[1])
    redis.Redis(port=primary_port).config_set("repl-diskless-sync-delay", 0)  # the replica syncs at once, not in 5 s
    replica, replica_url = start_redis(workdir / "replica", persistent=True, replica_of=primary_port)
    sentinels, sentinel_url = start_sentinels(workdir / "sentinels", primary_port)
    base = make_stack(tmp_path_factory, tiny_model, primary_url, s3_endpoint,
                      RENDERQ_REDIS_URL=f"{sentinel_url}/0", RENDERQ_MAX_BATCH=1)
    stack = SentinelStack(env=base.env, workdir=base.workdir)
    redis_procs: list[Proc] = [primary, replica, *sentinels]
    try:
        in_sync = lambda: redis.Redis.from_url(replica_url).info("replication")["master_link_status"] == "up"  # noqa: E731
        wait_until(in_sync, 10, what="the replica to be in sync")
        stack.worker("w")
        stack.api()
        yield stack, primary
    finally:
        stack.stop()
        for proc in redis_procs:
            proc.stop()


def test_the_api_answers_503_during_a_failover_and_every_accepted_run_completes_once(failover_stack):
    stack, primary = failover_stack
    traffic = Traffic(stack)
    caller = threading.Thread(target=traffic.submit_and_poll, daemon=True)
    caller.start()
    time.sleep(SUBMIT_BEFORE)
    before = len(traffic.accepted)
    killed = time.monotonic()
    primary.kill()  # SIGKILL: no shutdown, no last write

    def recovered_at() -> float | None:
        after = [at for at, method, status, _ in traffic.answers if method == "POST" and status == 202 and at > killed]
        return after[0] if after else None

    back = wait_until(recovered_at, 20, interval=0.1, what="the API to accept runs again")
    time.sleep(SUBMIT_AFTER_RECOVERY)
    traffic.stop.set()
    caller.join(15)

    statuses = Counter((method, status, kind) for _, method, status, kind in traffic.answers)
    print(f"\nFAILOVER: {len(traffic.accepted)} runs accepted ({before} before the kill); the API accepted runs "
          f"again {back - killed:.1f}s after the primary died; answers: {dict(statuses)}")
    assert traffic.broken == []
    allowed = {("POST", 202), ("GET", 200), ("POST", 503), ("GET", 503)}
    assert {(method, status) for method, status, _ in statuses} <= allowed, statuses
    assert {kind for _, status, kind in statuses if status == 503} <= {"/problems/service-unavailable"}
    assert any(status == 503 for _, status, _ in statuses)  # the failover was seen, and answered so
    assert before > 0 and len(traffic.accepted) > before
    assert all(proc.alive() for proc in stack.procs)  # the same API and worker, reconnected by themselves

    check_every_accepted_run_completed_once(stack, traffic.accepted)


def check_every_accepted_run_completed_once(stack: Stack, ids: list[str]) -> None:
    redis = stack.redis()

    def records():
        with redis.pipeline(transaction=False) as pipe:
            for run_id in ids:
                pipe.hgetall(f"renderq:run:{run_id}")
            rows = pipe.execute()
        return rows if all(row.get("status") in ("completed", "failed") for row in rows) else None

    rows = wait_until(records, 60, interval=0.5, what="every accepted run to end")
    assert Counter(row["status"] for row in rows) == {"completed": len(ids)}
    lines = [json.loads(line) for proc in stack.procs for line in proc.log().splitlines() if line.startswith("{")]
    completions = Counter(line.get("run_id") for line in lines if " completed in " in line.get("message", ""))
    assert {run_id: completions[run_id] for run_id in ids} == {run_id: 1 for run_id in ids}
    s3 = stack.s3()
    for run_id, row in zip(ids, rows):
        listed = s3.list_objects_v2(Bucket=stack.env["RENDERQ_S3_BUCKET"], Prefix=f"{run_id}/")
        images = [obj["Key"] for obj in listed.get("Contents", []) if not obj["Key"].endswith(".thumb.webp")]
        assert images == [f"{run_id}/0.png"]
        assert len(json.loads(row["images"])) == 1
