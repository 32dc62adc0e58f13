"""A status change is announced once (events, queue indexes, webhook, batch count), even when
the process that made it dies before announcing it: the script that made it marks it, and
whoever takes the mark announces it (storage/run_events.py). Fast tier: fakeredis."""

from __future__ import annotations

import json
import threading
import time

import fakeredis
import pytest

from storage.previews import preview_key
from storage.records import RunRecord, RunStatus, WebhookTarget
from storage.run_events import UNANNOUNCED
from storage.run_index import QUEUED
from storage.runs import HEARTBEATS, RUNS, RunStore, run_key
from storage.webhooks import DUE, DELIVERY_PREFIX

HOOK = WebhookTarget(url="https://hooks.example.com/x", events=["started", "completed"])


@pytest.fixture
def store():
    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600)


def webhooks(store, event: str) -> list[dict]:
    bodies = [json.loads(store.redis.hget(DELIVERY_PREFIX + m, "body")) for m in store.redis.zrange(DUE, 0, -1)]
    return [body for body in bodies if body["type"] == f"run.{event}"]


def finish_and_die(store, run_id: str) -> None:
    """What a render process killed between the finish script and its announcement leaves."""
    args = [1, run_id, "", "status", "completed", "progress", 100, "completed_at", time.time()]
    assert store._finish(keys=[run_key(run_id), HEARTBEATS, RUNS, preview_key(run_id)], args=args)  # the record as written


def test_a_change_whose_maker_died_is_announced_by_the_reaper_once(store):
    store.create(RunRecord(run_id="gen_a", webhook=HOOK, request={"num_inference_steps": 2}))
    assert store.claim("gen_a", 1, "w1", 5) == "claimed"
    assert len(webhooks(store, "started")) == 1 and store.redis.zcard(UNANNOUNCED) == 0
    finish_and_die(store, "gen_a")
    assert webhooks(store, "completed") == []
    assert store.events.announce_overdue(older_than=5) == []  # not overdue yet: its maker may still do it
    assert store.events.announce_overdue(older_than=5, now=time.time() + 10) == ["gen_a|completed|1"]
    [completed] = webhooks(store, "completed")
    assert completed["data"]["run_id"] == "gen_a" and completed["data"]["status"] == "completed"
    assert store.events.announce_overdue(older_than=0, now=time.time() + 10) == []
    assert len(webhooks(store, "completed")) == 1


def test_the_maker_and_many_reapers_announce_a_change_once(store):
    store.create(RunRecord(run_id="gen_b", webhook=HOOK, batch_id="batch_1", request={"num_inference_steps": 2}))
    store.redis.hset("renderq:batch:batch_1", mapping={"total": 1, "ended": 0})
    assert store.claim("gen_b", 1, "w1", 5) == "claimed"
    finish_and_die(store, "gen_b")
    record = store.get("gen_b")
    start = threading.Barrier(6)
    outcomes: list = []

    def announce(i: int) -> None:
        start.wait()
        if i == 0:
            outcomes.append(store.events.status_changed(record))  # the maker, late
        else:
            outcomes.extend(store.events.announce_overdue(older_than=0, now=time.time() + 10))

    threads = [threading.Thread(target=announce, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for outcome in outcomes if outcome) == 1
    assert len(webhooks(store, "completed")) == 1
    assert store.redis.hget("renderq:batch:batch_1", "ended") == "1"


def test_a_change_overtaken_before_anyone_announced_it_gives_way_to_the_newer_one(store):
    store.create(RunRecord(run_id="gen_c", webhook=HOOK, request={"num_inference_steps": 2}))
    claim = store._claim(keys=[run_key("gen_c"), HEARTBEATS, RUNS, "renderq:queue-message:gen_c"],
                         args=[1, "w1", time.time(), 5, "gen_c"])
    assert claim == "claimed"  # and its worker died before announcing it
    store.redis.zadd(HEARTBEATS, {"gen_c": time.time() - 60})
    [(run_id, attempt)] = store.reap_stale(stale_after=5, max_attempts=3)  # the reaper announces its own change
    assert (run_id, attempt) == ("gen_c", 2)
    assert store.redis.zscore(QUEUED + "normal", "gen_c") is not None  # queued again, in its queue index
    assert store.events.announce_overdue(older_than=0, now=time.time() + 10) == []
    assert store.redis.zcard(UNANNOUNCED) == 0
    assert webhooks(store, "started") == []  # the run never got to say it started; it starts again
    assert store.get("gen_c").status == RunStatus.queued


def test_every_status_change_of_a_run_leaves_no_mark_behind(store):
    store.create(RunRecord(run_id="gen_d", webhook=HOOK, request={"num_inference_steps": 2}))
    store.create(RunRecord(run_id="gen_e", request={"num_inference_steps": 2}, start_deadline=time.time() - 1))
    store.create(RunRecord(run_id="gen_f", request={"num_inference_steps": 2}))
    assert store.claim("gen_d", 1, "w1", 5) == "claimed"
    assert store.complete("gen_d", 1, [], {"total_seconds": 0.1})
    assert store.claim("gen_e", 1, "w1", 5) == "expired"
    assert store.cancel("gen_f") == "canceled"
    assert store.redis.zcard(UNANNOUNCED) == 0
    assert store.redis.zcard(QUEUED + "normal") == 0
    assert [w["data"]["run_id"] for w in webhooks(store, "completed")] == ["gen_d"]


def test_a_webhook_attempt_that_never_happened_is_made_again_after_its_lease(store):
    """A webhook task lost to a Redis outage (or with its webhook worker): its message was taken,
    its attempt never recorded; it is due again once the lease ends, then done with."""
    hooks = store.webhooks
    message_id = hooks.file("https://hooks.example.com/x", "run.completed", {"run_id": "gen_w"}, "renderq:run:gen_w")
    now = time.time()
    assert hooks.take_due(now=now, lease=10) == [message_id]
    assert hooks.take_due(now=now + 5, lease=10) == []  # leased: one scheduler has it
    assert hooks.take_due(now=now + 11, lease=10) == [message_id]  # its attempt never came: again
    hooks.schedule(message_id, now + 30)  # an attempt recorded, the next one due later
    assert hooks.take_due(now=now + 20, lease=10) == []
    hooks.finish(message_id, "delivered")
    assert hooks.take_due(now=now + 1000, lease=10) == []
