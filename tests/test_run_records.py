"""Run records: the state transitions a render goes through, each happening once."""

from __future__ import annotations

import time

import fakeredis
import pytest

from core.problems import Problem
from storage.records import RunRecord, RunStatus, StoredImage
from storage.runs import HEARTBEATS, ProgressThrottle, RunStore, run_key


@pytest.fixture
def runs() -> RunStore:
    return RunStore(fakeredis.FakeRedis(decode_responses=True), retention_seconds=3600)


def new_run(runs: RunStore, run_id: str = "gen_a") -> RunRecord:
    return runs.create(RunRecord(run_id=run_id, request={"prompt": "p", "width": 64, "height": 64}))


def test_a_record_round_trips_and_expires_with_the_run(runs):
    record = new_run(runs)
    assert record.expires_at == pytest.approx(record.created_at + 3600)
    assert runs.get("gen_a") == record
    assert 3590 < runs.redis.ttl(run_key("gen_a")) <= 3601


def test_only_one_delivery_claims_a_queued_run(runs):
    new_run(runs)
    assert runs.claim("gen_a", 1, "w1", stale_after=5) == "claimed"
    assert runs.claim("gen_a", 1, "w2", stale_after=5) == "busy"
    record = runs.get("gen_a")
    assert record.status == RunStatus.running and record.worker == "w1" and record.started_at


def test_a_completed_run_is_not_rendered_again_on_redelivery(runs):
    new_run(runs)
    runs.claim("gen_a", 1, "w1", stale_after=5)
    image = StoredImage(key="gen_a/0.png", width=64, height=64, seed=1)
    assert runs.complete("gen_a", 1, [image], {"total_seconds": 1.0})
    assert runs.claim("gen_a", 1, "w2", stale_after=5) == "completed"
    record = runs.get("gen_a")
    assert record.progress == 100 and record.images == [image] and record.completed_at


def test_unknown_run_is_missing(runs):
    assert runs.claim("gen_nope", 1, "w1", stale_after=5) == "missing"


def test_a_silent_worker_loses_its_run_to_the_reaper_once(runs):
    new_run(runs)
    runs.claim("gen_a", 1, "w1", stale_after=5)
    runs.redis.zadd(HEARTBEATS, {"gen_a": time.time() - 60})
    assert runs.reap_stale(stale_after=5, max_attempts=3) == [("gen_a", 2)]
    assert runs.reap_stale(stale_after=5, max_attempts=3) == []  # taken once only
    record = runs.get("gen_a")
    assert record.status == RunStatus.queued and record.attempt == 2
    # The dead worker's message, if ever redelivered, is superseded; the new one claims.
    assert runs.claim("gen_a", 1, "w1", stale_after=5) == "superseded"
    assert runs.claim("gen_a", 2, "w2", stale_after=5) == "claimed"
    # And a late finish by the first delivery is dropped.
    assert not runs.complete("gen_a", 1, [], {})
    assert runs.complete("gen_a", 2, [], {})


def test_a_live_worker_keeps_its_run(runs):
    new_run(runs)
    runs.claim("gen_a", 1, "w1", stale_after=5)
    runs.heartbeat("gen_a")
    assert runs.reap_stale(stale_after=5, max_attempts=3) == []


def test_a_run_whose_workers_keep_dying_ends_failed(runs):
    new_run(runs)
    for attempt in (1, 2):
        runs.claim("gen_a", attempt, "w", stale_after=5)
        runs.redis.zadd(HEARTBEATS, {"gen_a": 0})
        runs.reap_stale(stale_after=5, max_attempts=2)
    record = runs.get("gen_a")
    assert record.status == RunStatus.failed
    assert record.error.type == "/problems/worker-lost"


def test_failing_records_the_problem(runs):
    new_run(runs)
    runs.claim("gen_a", 1, "w1", stale_after=5)
    assert runs.fail("gen_a", 1, Problem.of("render-failed", 500, detail="boom"))
    record = runs.get("gen_a")
    assert record.status == RunStatus.failed and record.error.detail == "boom"
    assert runs.redis.zscore(HEARTBEATS, "gen_a") is None


def test_heartbeat_never_resurrects_a_reaped_run(runs):
    runs.heartbeat("gen_gone")
    assert runs.redis.zscore(HEARTBEATS, "gen_gone") is None


def test_progress_writes_are_throttled_but_keep_first_and_last(runs):
    new_run(runs)
    round_trips: list[int | None] = []
    runs.report_progress = lambda run_id, value: round_trips.append(value) or False
    throttle = ProgressThrottle(runs, "gen_a", min_interval=60)
    for step in range(1, 51):
        assert throttle(step, 50) is True
    # One round trip each (progress written, cancel read); the 48 steps between cost none.
    assert round_trips == [2, 99]


def test_a_cancel_is_read_in_the_same_round_trip_as_the_progress_it_stops_at(runs):
    new_run(runs)
    assert runs.claim("gen_a", 1, "w1", 5) == "claimed"
    throttle = ProgressThrottle(runs, "gen_a", min_interval=0)
    assert throttle(1, 10) is True
    runs.cancel("gen_a")
    assert throttle(2, 10) is False
    assert runs.get("gen_a").progress == 20


def test_render_rate_is_a_moving_average(runs):
    assert runs.render_rate(default=1.0) == 1.0
    runs.record_render_rate(2.0)
    runs.record_render_rate(4.0, weight=0.5)
    assert runs.render_rate(default=1.0) == pytest.approx(3.0)
