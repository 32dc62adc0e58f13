"""Render messages a worker took and never started go back to their queue within the reaper's
window (storage/held_messages.py), exactly once whatever the number of reapers. Fast tier:
fakeredis, with kombu's unacknowledged set laid out as kombu's Redis transport writes it
(tests/test_dead_workers.py does it with real workers, kombu and Redis)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import fakeredis
import pytest

from core.queue import RENDER_QUEUES, RENDER_TASK, render_queues
from core.settings import Settings
from storage.held_messages import HeldMessages, decode, queue_key
from storage.records import Priority, RunRecord, RunStatus
from storage.runs import RunStore

UNACKED, INDEX = "unacked", "unacked_index"


def payload(run_id: str, attempt: int, queue: str, task: str = RENDER_TASK, priority: int = 0) -> dict:
    """A render message as Celery builds it and kombu publishes it (base64 body, delivery tag)."""
    body = json.dumps([[run_id, attempt], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": str(uuid.uuid4()), "argsrepr": repr([run_id, attempt])},
        "properties": {
            "correlation_id": "x", "reply_to": "", "delivery_mode": 2, "priority": priority, "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue}, "delivery_tag": str(uuid.uuid4()),
        },
    }


def take(client, message: dict, taken_at: float) -> str:
    """What kombu's QoS.append writes when a consumer takes `message` (and BRPOP removed it)."""
    tag = message["properties"]["delivery_tag"]
    queue = message["properties"]["delivery_info"]["routing_key"]
    client.zadd(INDEX, {tag: taken_at})
    client.hset(UNACKED, tag, json.dumps([message, "", queue]))
    return tag


@pytest.fixture
def store():
    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600)


@pytest.fixture
def held(store):
    return HeldMessages(store.redis, store.redis)


def queued(store, run_id: str, priority: Priority = Priority.normal) -> None:
    store.create(RunRecord(run_id=run_id, priority=priority, request={"num_inference_steps": 2}))


def test_a_message_held_past_the_window_whose_run_was_never_claimed_goes_back_to_the_head_of_its_queue(store, held):
    queued(store, "gen_stray")
    redis = store.redis
    redis.lpush(RENDER_QUEUES["normal"], "newer-1", "newer-2")  # queued after it; BRPOP takes from the right
    tag = take(redis, payload("gen_stray", 1, RENDER_QUEUES["normal"]), time.time() - 10)

    [given] = held.give_back(held_after=3)

    assert (given.run_id, given.attempt, given.restored) == ("gen_stray", 1, True) and given.held_seconds >= 10
    head = json.loads(redis.lindex(RENDER_QUEUES["normal"], -1))  # the next message any worker takes
    assert json.loads(base64.b64decode(head["body"]))[0] == ["gen_stray", 1]
    assert head["headers"]["redelivered"] and head["properties"]["delivery_info"]["redelivered"]
    assert head["properties"]["delivery_tag"] != tag  # a late ack of the old tag removes nothing of the next holder's
    assert redis.llen(RENDER_QUEUES["normal"]) == 3
    assert redis.hlen(UNACKED) == 0 and redis.zcard(INDEX) == 0
    assert held.give_back(held_after=3) == []  # once


def test_a_message_taken_within_the_window_is_left_to_its_worker(store, held):
    queued(store, "gen_fresh")
    take(store.redis, payload("gen_fresh", 1, RENDER_QUEUES["normal"]), time.time() - 1)
    assert held.give_back(held_after=3) == []
    assert store.redis.hlen(UNACKED) == 1 and store.redis.llen(RENDER_QUEUES["normal"]) == 0


def test_the_message_of_a_claimed_superseded_or_ended_run_is_dropped_not_restored(store, held):
    for run_id in ("gen_claimed", "gen_superseded", "gen_canceled"):
        queued(store, run_id)
    assert store.claim("gen_claimed", 1, "w1", 3) == "claimed"
    store.redis.hset("renderq:run:gen_superseded", "attempt", 2)  # a reaper took it back as attempt 2
    store.cancel("gen_canceled")
    old = time.time() - 10
    for run_id in ("gen_claimed", "gen_superseded", "gen_canceled", "gen_gone"):
        take(store.redis, payload(run_id, 1, RENDER_QUEUES["normal"]), old)

    given = held.give_back(held_after=3)

    assert sorted((g.run_id, g.restored) for g in given) == [
        ("gen_canceled", False), ("gen_claimed", False), ("gen_gone", False), ("gen_superseded", False)]
    assert store.redis.llen(RENDER_QUEUES["normal"]) == 0 and store.redis.hlen(UNACKED) == 0


def test_other_tasks_messages_are_left_to_kombu(store, held):
    take(store.redis, payload("x", 1, "renderq.webhooks", task="renderq.webhook.deliver"), time.time() - 100)
    store.redis.hset(UNACKED, "garbage", "not json")
    store.redis.zadd(INDEX, {"garbage": time.time() - 100})
    assert held.give_back(held_after=3) == []
    assert store.redis.hlen(UNACKED) == 2


def test_each_message_goes_back_to_its_own_priority_queue(store, held):
    old = time.time() - 10
    for priority in Priority:
        queued(store, f"gen_{priority.value}", priority)
        take(store.redis, payload(f"gen_{priority.value}", 1, RENDER_QUEUES[priority.value]), old)
    assert len(held.give_back(held_after=3)) == 3
    for priority in Priority:
        [message] = store.redis.lrange(RENDER_QUEUES[priority.value], 0, -1)
        assert json.loads(base64.b64decode(json.loads(message)["body"]))[0][0] == f"gen_{priority.value}"


def test_a_message_with_a_kombu_priority_goes_back_to_that_priority_list():
    from kombu.transport.redis import Channel

    message = payload("gen_p", 1, RENDER_QUEUES["normal"], priority=7)
    assert queue_key(Channel, RENDER_QUEUES["normal"], message) == RENDER_QUEUES["normal"] + Channel.sep + "6"
    held = decode("t", 0.0, json.dumps([message, "", RENDER_QUEUES["normal"]]))
    assert held.queue_key == RENDER_QUEUES["normal"] + Channel.sep + "6"


def test_many_reapers_at_once_restore_each_message_exactly_once(store):
    old = time.time() - 10
    for i in range(20):
        queued(store, f"gen_{i}")
        take(store.redis, payload(f"gen_{i}", 1, RENDER_QUEUES["normal"]), old)
    reapers = [HeldMessages(store.redis, store.redis) for _ in range(6)]
    start = threading.Barrier(len(reapers))
    results: list = []

    def reap(held: HeldMessages) -> None:
        start.wait()
        results.extend(held.give_back(held_after=3))

    threads = [threading.Thread(target=reap, args=(held,)) for held in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(g.run_id for g in results) == sorted(f"gen_{i}" for i in range(20))
    assert store.redis.llen(RENDER_QUEUES["normal"]) == 20


def test_a_reaper_that_read_a_message_another_reaper_restored_meanwhile_pushes_nothing(store, monkeypatch):
    queued(store, "gen_race")
    take(store.redis, payload("gen_race", 1, RENDER_QUEUES["normal"]), time.time() - 10)
    slow, fast = HeldMessages(store.redis, store.redis), HeldMessages(store.redis, store.redis)
    read_records = slow._waiting

    def the_other_reaper_runs_between(messages):
        assert [g.run_id for g in fast.give_back(held_after=3)] == ["gen_race"]
        return read_records(messages)

    monkeypatch.setattr(slow, "_waiting", the_other_reaper_runs_between)
    assert slow.give_back(held_after=3) == []
    assert store.redis.llen(RENDER_QUEUES["normal"]) == 1


def test_a_message_taken_again_after_it_was_read_is_not_taken_from_its_new_holder(store, monkeypatch):
    """Celery's reject(requeue) puts a message back under the same tag; if another worker takes it
    between a reaper's read and its script, the fresh entry is that worker's."""
    queued(store, "gen_again")
    message = payload("gen_again", 1, RENDER_QUEUES["normal"])
    take(store.redis, message, time.time() - 10)
    held = HeldMessages(store.redis, store.redis)
    read_records = held._waiting

    def taken_again(messages):
        take(store.redis, message, time.time())
        return read_records(messages)

    monkeypatch.setattr(held, "_waiting", taken_again)
    assert held.give_back(held_after=3) == []
    assert store.redis.hlen(UNACKED) == 1 and store.redis.llen(RENDER_QUEUES["normal"]) == 0


def test_the_reaper_puts_a_reaped_run_at_the_head_of_its_queue_and_gives_back_held_messages(store, monkeypatch):
    from worker import reaper

    queued(store, "gen_dead", Priority.high)
    assert store.claim("gen_dead", 1, "w1", 3) == "claimed"
    store.redis.zadd("renderq:heartbeats", {"gen_dead": time.time() - 60})
    queued(store, "gen_stray", Priority.low)
    take(store.redis, payload("gen_stray", 1, RENDER_QUEUES["low"]), time.time() - 60)
    store.redis.lpush(RENDER_QUEUES["high"], "behind")
    sent = []
    monkeypatch.setattr(reaper, "render_message", lambda app, run_id, attempt, priority, pool: (
        render_queues(pool)[priority], json.dumps({"args": [run_id, attempt]})))
    monkeypatch.setattr(reaper, "enqueue_render", lambda *args: sent.append(args))

    taken = reaper.reap_once(object(), store, Settings(heartbeat_stale_after=3), HeldMessages(store.redis, store.redis))

    assert taken == [("gen_dead", 2)] and sent == []
    assert json.loads(store.redis.lindex(RENDER_QUEUES["high"], -1)) == {"args": ["gen_dead", 2]}
    assert store.get("gen_dead").status == RunStatus.queued
    [back] = store.redis.lrange(RENDER_QUEUES["low"], 0, -1)
    assert json.loads(base64.b64decode(json.loads(back)["body"]))[0] == ["gen_stray", 1]


def test_queue_position_counts_a_stranded_run_where_its_message_goes_back(store, held):
    """While its message is held by a dead worker the run is still queued, first of its queue;
    given back, its message is the next one taken: the position it was told stays true."""
    from storage.render_stats import RenderStats

    queued(store, "gen_first")
    queued(store, "gen_second")
    store.redis.lpush(RENDER_QUEUES["normal"], json.dumps(payload("gen_second", 1, RENDER_QUEUES["normal"])))
    take(store.redis, payload("gen_first", 1, RENDER_QUEUES["normal"]), time.time() - 10)
    stats = RenderStats(step_seconds={}, overhead=0.1)
    assert store.index.queue_position(store.get("gen_first"), stats)[0] == 0
    held.give_back(held_after=3)
    assert store.index.queue_position(store.get("gen_first"), stats)[0] == 0
    order = [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in store.redis.lrange(RENDER_QUEUES["normal"], 0, -1)]
    assert order[::-1] == ["gen_first", "gen_second"]  # in the order BRPOP takes them


# --- queued runs whose message is nowhere (storage/lost_messages.py) ----------------------------

def resent_runs(store, queue: str) -> list:
    return [json.loads(m)["args"] for m in store.redis.lrange(queue, 0, -1) if "args" in json.loads(m)]


def message_for(run_id: str, attempt: int, priority: str, pool: str = "default"):
    return render_queues(pool)[priority], json.dumps({"args": [run_id, attempt]})


def test_a_queued_run_whose_message_was_lost_gets_a_new_one_at_the_head_once_it_stays_missing(store, held):
    from storage.lost_messages import LostMessages

    queued(store, "gen_lost")  # its message popped by a worker that died before kombu recorded it
    queued(store, "gen_next")
    store.redis.lpush(RENDER_QUEUES["normal"], json.dumps(payload("gen_next", 1, RENDER_QUEUES["normal"])))
    lost = LostMessages(held)
    now = time.time()
    assert lost.resend(missing_after=3, message_for=message_for, now=now) == []  # seen missing once
    assert lost.resend(missing_after=3, message_for=message_for, now=now + 1) == []
    assert lost.resend(missing_after=3, message_for=message_for, now=now + 3) == [("gen_lost", 1)]
    assert json.loads(store.redis.lindex(RENDER_QUEUES["normal"], -1)) == {"args": ["gen_lost", 1]}  # the head
    assert lost.resend(missing_after=3, message_for=message_for, now=now + 10) == []  # found at the head now
    other = LostMessages(HeldMessages(store.redis, store.redis))  # another reaper, same sightings
    store.redis.rpop(RENDER_QUEUES["normal"])  # lost again at once: the guard lets it be sent once per window
    other.resend(missing_after=3, message_for=message_for, now=now)
    assert other.resend(missing_after=3, message_for=message_for, now=now + 3) == []


def test_runs_whose_message_is_on_its_way_held_or_first_in_line_are_not_resent(store, held):
    from storage.lost_messages import LostMessages

    for run_id in ("gen_first", "gen_held", "gen_claimed"):
        queued(store, run_id)
    store.redis.lpush(RENDER_QUEUES["normal"], json.dumps(payload("gen_first", 1, RENDER_QUEUES["normal"])))
    take(store.redis, payload("gen_held", 1, RENDER_QUEUES["normal"]), time.time())
    store.redis.hset("renderq:run:gen_claimed", "status", "running")  # claimed; its index entry not yet announced
    lost = LostMessages(held)
    now = time.time()
    lost.resend(missing_after=3, message_for=message_for, now=now)
    assert lost.resend(missing_after=3, message_for=message_for, now=now + 5) == []
    message = json.loads(store.redis.rpop(RENDER_QUEUES["normal"]))  # popped: on its way to a worker
    assert lost.missing() == [("gen_first", "1", "normal", "default")]
    take(store.redis, message, time.time())  # recorded by its worker before the next tick
    assert lost.resend(missing_after=3, message_for=message_for, now=now + 10) == []
