"""Fair share between tenants (storage/fair_share.py), fast tier: the admission scripts on
fakeredis (Lua through lupa), a worker played by RPOP + claim. tests/test_fair_share_stack.py
does it with real workers, Celery and Redis, and kills processes during admission churn."""

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from core.queue import RENDER_QUEUES
from storage import fair_share
from storage.fair_share import admitted_key, backlog_key, slots_key, staged_key
from storage.held_messages import HeldMessages
from storage.lost_messages import LostMessages, message_run
from storage.records import Priority, RunRecord
from storage.redis_ops import run
from storage.render_stats import RenderStats
from storage.runs import RunStore, run_key
from tests.test_held_messages import payload

NORMAL = RENDER_QUEUES["normal"]


@pytest.fixture
def store():
    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600, fair_slots=1)


def submit(store: RunStore, tenant: str, *run_ids: str, priority: Priority = Priority.normal,
           group: str | None = None) -> list[RunRecord]:
    """What api/submission.py writes under fair share: the records, then one EVAL for their messages."""
    queue = RENDER_QUEUES[priority.value]
    records = []
    for run_id in run_ids:
        record = RunRecord(run_id=run_id, tenant=tenant, priority=priority, queue=queue, render_group=group,
                           request={"num_inference_steps": 2, "width": 64, "height": 64})
        record.queue_message = (queue, message(run_id, queue))
        records.append(record)
    return store.create_many(records, also=lambda pipe: fair_share.submit(pipe, records, store.fair_slots, 3600))


def message(run_id: str, queue: str = NORMAL) -> str:
    """A render message as kombu publishes it (tests/test_held_messages.py), at attempt 1."""
    return json.dumps(payload(run_id, 1, queue), sort_keys=True)


def listed(store: RunStore, queue: str = NORMAL) -> list[str]:
    """Run ids of the messages on `queue`, head (the next taken) first."""
    return [message_run(raw) for raw in reversed(store.redis.lrange(queue, 0, -1))]


def take(store: RunStore, queue: str = NORMAL) -> str | None:
    """A worker: the message at the head, claimed."""
    raw = store.redis.rpop(queue)
    if raw is None:
        return None
    run_id = message_run(raw)
    outcome, _ = store.claim_group(run_id, 1, "w1", 6, 1)  # as worker/tasks.py claims, alone
    assert outcome == "claimed"
    return run_id


def test_a_tenant_has_one_run_on_the_list_the_rest_staged_with_their_messages(store):
    submit(store, "a", *[f"a{i}" for i in range(5)])
    assert listed(store) == ["a0"]
    redis = store.redis
    assert redis.zrange(staged_key(NORMAL, "a"), 0, -1) == ["a1", "a2", "a3", "a4"]
    assert redis.hget(run_key("a3"), "fair") == "staged" and redis.hget(run_key("a0"), "fair") is None
    assert redis.get("renderq:queue-message:a3").split("\n", 1)[0] == NORMAL
    assert message_run(redis.get("renderq:queue-message:a3").split("\n", 1)[1]) == "a3"
    assert redis.hget(slots_key(NORMAL), "a") == "1"
    assert redis.llen(backlog_key(NORMAL)) == 4  # what an autoscaler adds to the list's own length
    assert take(store) == "a0"
    assert listed(store) == ["a1"]  # admitted in the claim's own step
    assert redis.hget(run_key("a1"), "fair") is None
    assert redis.llen(backlog_key(NORMAL)) == 3


def test_a_single_run_waits_behind_one_run_of_a_tenant_holding_500(store):
    submit(store, "a", *[f"a{i}" for i in range(500)])
    assert take(store) == "a0"  # the worker is rendering a0; a1 waits on the list
    submit(store, "b", "b0")
    order = [take(store) for _ in range(6)]
    assert order[:2] == ["a1", "b0"]  # b0 starts after the render in progress and one more
    assert order[2:] == ["a2", "a3", "a4", "a5"]  # then A has the worker to itself again


def test_backlogged_tenants_take_turns_in_the_order_their_runs_came(store):
    submit(store, "a", *[f"a{i}" for i in range(4)])
    submit(store, "b", *[f"b{i}" for i in range(4)])
    submit(store, "c", "c0")
    assert [take(store) for _ in range(9)] == ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3", "b3"]
    assert take(store) is None
    assert store.redis.hlen(slots_key(NORMAL)) == 0 and store.redis.zcard(admitted_key(NORMAL)) == 0
    assert store.redis.llen(backlog_key(NORMAL)) == 0


def test_more_slots_let_more_of_a_tenants_runs_wait_on_the_list(store):
    store.fair_slots = 3
    submit(store, "a", *[f"a{i}" for i in range(5)])
    assert listed(store) == ["a0", "a1", "a2"]


def test_priorities_are_admitted_apart(store):
    submit(store, "a", "a0", "a1", priority=Priority.low)
    submit(store, "a", "h0", "h1", priority=Priority.high)
    assert listed(store, RENDER_QUEUES["low"]) == ["a0"] and listed(store, RENDER_QUEUES["high"]) == ["h0"]


def test_a_canceled_or_expired_staged_run_leaves_staging_and_an_admitted_one_frees_its_slot(store):
    submit(store, "a", "a0", "a1", "a2", "a3")
    assert store.cancel("a2") == "canceled"
    assert store.redis.zrange(staged_key(NORMAL, "a"), 0, -1) == ["a1", "a3"]
    assert store.cancel("a0") == "canceled"  # admitted: its message stays (a no-op), a1 is admitted
    assert listed(store) == ["a0", "a1"]
    store.redis.hset(run_key("a1"), "start_deadline", time.time() - 1)
    store.redis.zadd("renderq:deadlines", {"a1": time.time() - 1})
    assert store.expire_overdue() == ["a1"]
    assert listed(store) == ["a0", "a1", "a3"]
    assert store.redis.zcard(staged_key(NORMAL, "a")) == 0 and store.redis.llen(backlog_key(NORMAL)) == 0
    assert store.claim("a0", 1, "w1", 6) == "canceled"


def test_a_companion_taken_from_staging_leaves_it(store):
    submit(store, "a", "a0", "a1", "a2", group="g")
    assert message_run(store.redis.rpop(NORMAL)) == "a0"
    outcome, claimed = store.claim_group("a0", 1, "w1", 6, 8)
    assert outcome == "claimed" and [record.run_id for record in claimed] == ["a0", "a1", "a2"]
    assert store.redis.zcard(staged_key(NORMAL, "a")) == 0 and store.redis.hlen(slots_key(NORMAL)) == 0
    assert store.redis.llen(backlog_key(NORMAL)) == 0
    assert listed(store) == []  # a1's message was taken back off the list


def test_a_run_taken_back_from_a_dead_worker_counts_as_admitted_until_claimed(store):
    submit(store, "a", "a0", "a1")
    assert take(store) == "a0"
    store.heartbeat("a0")
    store.redis.zadd("renderq:heartbeats", {"a0": time.time() - 60})
    assert store.reap_stale(6, 3) == [("a0", 2)]
    assert store.redis.zscore(admitted_key(NORMAL), "a0|a") == 0 and store.redis.hget(slots_key(NORMAL), "a") == "2"
    assert store.claim("a0", 2, "w2", 6) == "claimed"
    assert store.redis.hget(slots_key(NORMAL), "a") == "1" and listed(store) == ["a1"]


def test_runs_staged_before_fair_share_was_turned_off_still_go_out_one_by_one(store):
    submit(store, "a", "a0", "a1", "a2")
    store.fair_slots = 0  # a worker (or any store) without the setting: never a flood, never left behind
    assert take(store) == "a0"
    assert listed(store) == ["a1"]
    assert take(store) == "a1" and take(store) == "a2" and take(store) is None


def test_the_lost_message_sweep_leaves_staged_runs_alone_and_finds_a_lost_admitted_one(store):
    submit(store, "a", *[f"a{i}" for i in range(20)])
    submit(store, "b", "b0")
    b0 = store.redis.lindex(NORMAL, 0)
    store.redis.lrem(NORMAL, 1, b0)  # b0's message lost with a worker
    lost = LostMessages(HeldMessages(store.redis, store.redis))
    assert lost.missing() == []  # a0 is next in line: b0's turn has not come
    assert take(store) == "a0"
    assert lost.missing() == [("b0", "1", "normal", "default")]  # not a2..a19: staged, no message yet
    store.redis.lpush(NORMAL, b0)
    assert lost.missing() == []


def test_queue_positions_are_the_order_a_worker_takes_the_runs_in(store):
    submit(store, "a", *[f"a{i}" for i in range(30)])
    submit(store, "b", "b0", "b1", "b2")
    submit(store, "c", "c0")
    stats = RenderStats(overhead=1.0)
    ids = [f"a{i}" for i in range(30)] + ["b0", "b1", "b2", "c0"]
    positions = {run_id: store.index.queue_position(store.get(run_id), stats) for run_id in ids}
    order = [take(store) for _ in ids]
    assert order[:8] == ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3"]
    assert {run_id: positions[run_id][0] for run_id in ids} == {run_id: order.index(run_id) for run_id in ids}
    assert positions["a29"][1] == pytest.approx(33 * stats.run_seconds({"num_inference_steps": 2, "width": 64, "height": 64}))


def test_repair_frees_the_slot_of_a_run_whose_record_expired_while_admitted(store):
    submit(store, "a", "a0", "a1")
    store.redis.delete(run_key("a0"))
    assert run(store.redis, fair_share.repair_op([NORMAL], 1, now=time.time() + 120)) == 1
    assert listed(store) == ["a0", "a1"]
    assert run(store.redis, fair_share.repair_op([NORMAL], 1, now=time.time() + 120)) == 0


def test_metrics_count_the_staged_runs_of_each_render_queue(store):
    from api.routes.metrics import staged_runs

    submit(store, "a", "a0", "a1", "a2")
    submit(store, "b", "b0", "b1")
    [sample] = [s for s in staged_runs(store.redis, ["default"]).samples if s.labels == {"queue": NORMAL}]
    assert sample.value == 3  # a1, a2, b1
