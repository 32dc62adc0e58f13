"""The per-key cap on active runs: exact at the cap, and a submit's cost bounded below it."""

from __future__ import annotations

import fakeredis

from storage.quotas import ACTIVE_PREFIX, ActiveRuns
from storage.runs import run_key


def _runs(client, statuses: dict[str, str]) -> None:
    for run_id, status in statuses.items():
        client.hset(run_key(run_id), "status", status)


def test_below_the_cap_a_reservation_checks_only_the_oldest_runs():
    client = fakeredis.FakeRedis(decode_responses=True)
    active = ActiveRuns(client, 3600)
    ids = [f"gen_{i:03d}" for i in range(40)]
    _runs(client, {run_id: "completed" if i < 20 else "queued" for i, run_id in enumerate(ids)})
    assert active.reserve("k", ids, cap=1000) is None
    assert active.reserve("k", ["gen_new"], cap=1000) is None
    # The 16 oldest were looked at (all finished: gone); the 4 other finished ones wait their turn.
    assert client.zcard(ACTIVE_PREFIX + "k") == 40 + 1 - 16


def test_at_the_cap_every_finished_run_frees_its_slot_first():
    client = fakeredis.FakeRedis(decode_responses=True)
    active = ActiveRuns(client, 3600)
    ids = [f"gen_{i:03d}" for i in range(40)]
    _runs(client, {run_id: "queued" if i < 30 else "canceled" for i, run_id in enumerate(ids)})
    assert active.reserve("k", ids, cap=40) is None
    assert active.reserve("k", ["gen_a", "gen_b"], cap=32) is None  # 30 queued + 2 fit once the 10 are pruned
    assert active.reserve("k", ["gen_c"], cap=32) == 32  # full: how many are active
