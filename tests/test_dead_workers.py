"""A fleet losing workers, on real processes: N queued runs, two render workers, SIGKILLs at
seeded random moments of workers' parent processes (with their render process) and of render
processes alone, a fresh worker started after each parent kill; then the same with Redis
restarted in the middle (append-only file on); and a message lost between Redis handing it
to a worker and kombu recording it.

Every run completes exactly once (one render, one charge, one image object, one completion
webhook), and the last one well before kombu's visibility timeout: a message a dead worker
took and never started goes back to its queue within a few heartbeat windows
(storage/held_messages.py), a run it was rendering through the heartbeat reaper, a message
lost outright is sent again (storage/lost_messages.py), and a status change its maker did not
live to announce is announced by a reaper (storage/run_events.py). Each fleet test prints how
long the slowest stranded message waited. RENDERQ_CHAOS_SEED picks the moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devkit.procs import Proc, free_port, renderq_command, start_redis, wait_until
from storage.credits import CreditStore
from tests.conftest import Stack, make_stack

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("RENDERQ_CHAOS_SEED", "16"))
STALE = 3.0  # RENDERQ_HEARTBEAT_STALE_AFTER: the reaper's window
KILLS = ["parent"] * 4 + ["loading", "render"]
GRANT = 10_000_000  # milli-credits
FINAL = ("completed", "failed", "canceled", "expired")


class Receiver:
    """Counts the completion webhooks of each run (retries of one message share its webhook-id)."""

    def __init__(self) -> None:
        self.completed: dict[str, set[str]] = defaultdict(set)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if body["type"] == "run.completed":
                    receiver.completed[body["data"]["run_id"]].add(self.headers["webhook-id"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Fleet:
    stack: Stack
    redis: Proc
    redis_port: int
    receiver: Receiver
    workers: list[Proc] = field(default_factory=list)
    all_workers: list[Proc] = field(default_factory=list)

    def launch(self) -> Proc:
        """A render worker, not waited for (kills go on while it starts)."""
        name = f"w{len(self.all_workers)}"
        proc = Proc(renderq_command("worker", f"--hostname={name}@%h", "--loglevel=INFO"),
                    self.stack.workdir / f"worker-{name}.log", env=self.stack.env)
        self.stack.procs.append(proc)
        self.workers.append(proc)
        self.all_workers.append(proc)
        return proc

    def restart_redis(self) -> None:
        self.redis.stop()  # SIGTERM: the append-only file has everything written
        time.sleep(1.5)
        self.redis, _ = start_redis(self.stack.workdir, persistent=True, port=self.redis_port)


@pytest.fixture
def fleet(tmp_path_factory, tiny_model, s3_endpoint):
    workdir = tmp_path_factory.mktemp("fleet")
    redis_proc, redis_url = start_redis(workdir, persistent=True)
    receiver = Receiver()
    # A run can be hit by several kills (and the Redis restart: a render finished while Redis is
    # down is taken back too): this is about exactly once, not the attempt budget.
    stack = make_stack(tmp_path_factory, tiny_model, redis_url, s3_endpoint, RENDERQ_HEARTBEAT_STALE_AFTER=STALE,
                       RENDERQ_WEBHOOK_ALLOW_PRIVATE="true", RENDERQ_MAX_ATTEMPTS=8,
                       RENDERQ_WEBHOOK_TIMEOUT=2, RENDERQ_WEBHOOK_LEASE=6)
    stack.workdir = workdir
    fleet = Fleet(stack, redis_proc, int(redis_url.rsplit(":", 1)[1]), receiver)
    try:
        hooks = Proc(renderq_command("worker", "--queues=renderq.webhooks", "--hostname=hooks@%h"),
                     workdir / "worker-hooks.log", env=stack.env)
        stack.procs.append(hooks)
        stack.api()
        wait_until(lambda: " ready." in hooks.log(), 90, interval=0.2, what="webhook worker")
        yield fleet
    finally:
        stack.stop()
        fleet.redis.stop()
        receiver.stop()


def render_process(worker: Proc) -> int | None:
    """The pid of the worker's prefork child, once it has one."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == worker.pid:
                return int(entry.name)
    return None


def submit_all(fleet: Fleet, runs: int) -> list[str]:
    """`runs` runs of three priorities and five step counts (render groups), each asking for its
    completion webhook, in batches of 200 (one transaction each)."""
    stack = fleet.stack
    CreditStore(stack.redis()).grant("tests", GRANT)
    hook = f"http://127.0.0.1:{fleet.receiver.port}/hook"
    bodies = [{"prompt": f"a lighthouse {i}", "width": 64, "height": 64, "num_inference_steps": 2 + i % 5, "seed": i,
               "priority": ("high", "normal", "low")[i % 3], "webhook_url": hook, "webhook_events": ["completed"]}
              for i in range(runs)]
    ids = []
    with stack.client() as api:
        for start in range(0, runs, 200):
            response = api.post("/v1/batches", json=bodies[start:start + 200], timeout=60)
            assert response.status_code == 202, response.text
            ids += response.json()["run_ids"]
    assert len(set(ids)) == runs
    return ids


class Killer:
    """SIGKILLs, at seeded random moments (0.5-4 s apart, once runs complete), a worker's
    parent with its render process (then starts a fresh worker) or a render process alone (its
    pool starts another).
    The victim of "parent" and "render" is any live worker with a render process: rendering,
    idle or still loading its model. "loading" is a parent kill aimed at a fresh worker that
    has taken a message and is still loading its model, the moment a node's death strands a
    run that nothing claimed."""

    def __init__(self, fleet: Fleet, rng: random.Random) -> None:
        self.fleet, self.rng = fleet, rng
        self.done: list[str] = []

    def live(self) -> list[Proc]:
        return [w for w in self.fleet.workers if w.alive() and render_process(w)]

    def completed(self) -> int:
        try:
            return int(self.fleet.stack.redis().hget("renderq:metrics:runs", "completed") or 0)
        except Exception:  # Redis restarting
            return 0

    def run(self, kinds: list[str], restart_redis_after: int | None) -> list[str]:
        wait_until(lambda: self.completed() > 0, 120, interval=0.1, what="the fleet to be rendering")
        for number, kind in enumerate(kinds):
            time.sleep(self.rng.uniform(0.5, 4.0))
            if kind == "loading":
                victim = self.loading_worker()
            else:
                victims = wait_until(self.live, 120, interval=0.1, what="a live worker")
                victim = victims[self.rng.randrange(len(victims))]
            self.kill(kind, victim)
            self.done.append(f"{kind}@{self.completed()}")
            if number == restart_redis_after:
                self.fleet.restart_redis()
                self.done.append("redis-restart")
        return self.done

    def loading_worker(self) -> Proc:
        """A fresh worker that has taken a message and not loaded its model yet."""
        while True:
            fresh = self.fleet.launch()
            taken = wait_until(lambda: " received" in fresh.log() or " loaded in " in fresh.log(), 120,
                               interval=0.02, what="a fresh worker to take a message")
            if taken and " loaded in " not in fresh.log():
                return fresh

    def kill(self, kind: str, victim: Proc) -> None:
        if kind in ("parent", "loading"):
            victim.kill()  # the process group: the Celery parent and its render process
            victim.popen.wait(10)
            self.fleet.workers.remove(victim)
            if kind == "parent":  # (the loading victim was the fresh one)
                self.fleet.launch()
        else:
            os.kill(render_process(victim), signal.SIGKILL)


def wait_for_all(fleet: Fleet, ids: list[str], timeout: float) -> dict[str, dict]:
    redis = fleet.stack.redis()

    def records():
        try:
            with redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    pipe.hgetall(f"renderq:run:{run_id}")
                rows = pipe.execute()
        except Exception:  # Redis restarting
            return None
        return dict(zip(ids, rows)) if all(row.get("status") in FINAL for row in rows) else None

    try:
        return wait_until(records, timeout, interval=0.5, what="every run to end")
    except TimeoutError:
        rows = [redis.hmget(f"renderq:run:{run_id}", "status", "attempt") for run_id in ids]
        left = Counter(f"{status} at attempt {attempt}" for status, attempt in rows if status not in FINAL)
        raise TimeoutError(f"after {timeout}s, runs not ended: {dict(left)}") from None


def worker_lines(fleet: Fleet) -> list[dict]:
    """Every JSON log line of the render workers and the webhook worker (its reaper reaps too)."""
    logs = [worker.log() for worker in fleet.all_workers] + [(fleet.stack.workdir / "worker-hooks.log").read_text()]
    return [json.loads(line) for log in logs for line in log.splitlines() if line.startswith("{")]


def check_exactly_once(fleet: Fleet, ids: list[str], records: dict[str, dict]) -> None:
    stack = fleet.stack
    assert Counter(row["status"] for row in records.values()) == {"completed": len(ids)}
    # One render completed each: the finish script ran once per run (it counts each completion),
    # and no run was logged completed twice (a kill right after the finish can cost its line).
    assert int(stack.redis().hget("renderq:metrics:runs", "completed")) == len(ids)
    lines = worker_lines(fleet)
    completions = Counter(line.get("run_id") for line in lines if " completed in " in line.get("message", ""))
    assert max(completions[run_id] for run_id in ids) == 1
    for run_id in ids:
        listed = stack.s3().list_objects_v2(Bucket=stack.env["RENDERQ_S3_BUCKET"], Prefix=f"{run_id}/")
        images = [obj["Key"] for obj in listed.get("Contents", []) if not obj["Key"].endswith(".thumb.webp")]
        assert images == [f"{run_id}/0.png"]  # (and its thumbnail)
        assert len(json.loads(records[run_id]["images"])) == 1
    for tenant in {row["tenant"] for row in records.values()}:  # each granted GRANT
        account = CreditStore(stack.redis()).account(tenant)
        charged = sum(int(row["credits_used"]) for row in records.values() if row["tenant"] == tenant)
        assert charged > 0 and account.balance == GRANT - charged and account.reserved == 0  # one charge each
    wait_until(lambda: len(fleet.receiver.completed) >= len(ids), 30, what="every completion webhook")
    time.sleep(1)  # a second one would come now
    assert {run_id: len(fleet.receiver.completed[run_id]) for run_id in ids} == {run_id: 1 for run_id in ids}


def report(fleet: Fleet, ids: list[str], records: dict[str, dict], started: float, kills: list[str]) -> tuple[float, float, int]:
    """Prints the figures; returns (seconds until the last run completed, slowest stranded wait,
    messages given back)."""
    lines = worker_lines(fleet)
    given_back = [line for line in lines if "held_seconds" in line]
    slowest = max((line["held_seconds"] for line in given_back), default=0.0)
    reaped = sum("worker fell silent" in line.get("message", "") for line in lines)
    announced = sum("announced by the reaper" in line.get("message", "") for line in lines)
    resent = sum("resent_run_id" in line for line in lines)
    calls = sum(" claimed" in line.get("message", "") and "attempt" in line.get("message", "") for line in lines)
    last = max(float(row["completed_at"]) for row in records.values()) - started
    attempts = Counter(int(row["attempt"]) for row in records.values())
    visibility = int(fleet.stack.env.get("RENDERQ_HARD_TIME_LIMIT", 360)) * 2 + 60
    print(f"\nFLEET seed={SEED} runs={len(ids)} kills={kills}\n"
          f"  last run completed {last:.1f}s after the first two workers were started ({calls} model calls)\n"
          f"  stranded messages given back: {len(given_back)}; the slowest stranded run waited {slowest:.1f}s "
          f"(kombu's visibility timeout: {visibility}s)\n"
          f"  runs taken back from dead renders: {reaped}; attempts: {dict(sorted(attempts.items()))}; "
          f"status changes announced by a reaper (their maker died first): {announced}; "
          f"messages lost with a worker and sent again: {resent}")
    return last, slowest, len(given_back)


def run_the_fleet(fleet: Fleet, runs: int, max_batch: int | None = None, restart_redis_after: int | None = None) -> None:
    ids = submit_all(fleet, runs)
    if max_batch is not None:
        fleet.stack.env["RENDERQ_MAX_BATCH"] = str(max_batch)  # the render workers' setting
    rng = random.Random(SEED)
    kinds = KILLS[:]
    rng.shuffle(kinds)
    started = time.time()
    fleet.launch()
    fleet.launch()
    kills = Killer(fleet, rng).run(kinds, restart_redis_after)
    records = wait_for_all(fleet, ids, timeout=180)
    last, slowest, given_back = report(fleet, ids, records, started, kills)
    check_exactly_once(fleet, ids, records)
    if max_batch == 1:  # the loading worker's message stranded its run; nothing else could take it
        assert given_back >= 1
    assert slowest <= 4 * STALE, slowest  # a few heartbeat windows, not the visibility timeout
    assert last < 150, last


def test_runs_survive_workers_and_render_processes_killed_at_random_moments(fleet):
    """Every run renders alone (RENDERQ_MAX_BATCH=1): with micro-batching, a worker starting
    another run of a stranded run's render group would take it along and hide the fault."""
    run_the_fleet(fleet, runs=300, max_batch=1)


def test_runs_survive_killed_workers_with_redis_restarted_in_the_middle(fleet):
    """Micro-batching on, Redis stopped (SIGTERM) and started again after the third kill."""
    run_the_fleet(fleet, runs=600, restart_redis_after=2)


def test_a_message_lost_between_redis_and_kombus_record_is_sent_again(fleet):
    """What a parent killed in the milliseconds between BRPOP and kombu's `unacked` write leaves:
    a queued run whose message is nowhere. Done here by hand (RPOP), then two workers drain the
    queue; the run is sent again when its turn comes and completes once."""
    import base64

    fleet.stack.env["RENDERQ_MAX_BATCH"] = "1"
    ids = submit_all(fleet, 12)
    redis = fleet.stack.redis()
    popped = json.loads(redis.rpop("renderq.render.high"))  # the oldest high run's message, gone
    lost = json.loads(base64.b64decode(popped["body"]))[0][0]
    started = time.time()
    fleet.launch()
    fleet.launch()
    records = wait_for_all(fleet, ids, timeout=120)
    others = max(float(row["completed_at"]) for run_id, row in records.items() if run_id != lost)
    waited = float(records[lost]["completed_at"]) - started
    print(f"\nLOST MESSAGE: run {lost} completed {waited:.1f}s after the workers were started, "
          f"{float(records[lost]['completed_at']) - others:+.1f}s after the last of the others")
    check_exactly_once(fleet, ids, records)
    assert any(line.get("resent_run_id") == lost for line in worker_lines(fleet))
    assert records[lost]["attempt"] == "1"
