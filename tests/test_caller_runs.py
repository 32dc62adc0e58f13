"""The caller's side of a run against the real stack: cancel, retry, Prefer: wait, start
deadlines, priorities and queue positions, listing, and Server-Sent Events."""

from __future__ import annotations

import time

import httpx
import pytest

from client.client import parse_sse
from tests.conftest import wait_for_run

FINAL = ("completed", "failed", "canceled", "expired")


def submit(api: httpx.Client, headers: dict | None = None, **fields) -> dict:
    body = {"prompt": "a red kite over the sea", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3} | fields
    response = api.post("/v1/generations", json=body, headers=headers or {})
    assert response.status_code in (200, 202), response.text
    return response.json()


def blocker(api: httpx.Client, steps: int = 40) -> dict:
    """A run that keeps the stack's single worker busy for a few seconds (≈0.1 s a step)."""
    run = submit(api, width=256, height=256, num_inference_steps=steps)
    wait_for_run(api, run["run_id"], statuses=("running",) + FINAL)
    return run


def test_cancel_queued_run_never_starts_and_cancel_is_idempotent(api):
    busy = blocker(api)
    queued = submit(api)
    first = api.post(f"/v1/generations/{queued['run_id']}/cancel")
    assert first.status_code == 200 and first.json()["status"] == "canceled"
    api.post(f"/v1/generations/{busy['run_id']}/cancel")
    wait_for_run(api, busy["run_id"], statuses=FINAL)
    time.sleep(0.5)  # the worker has had the queued run's message by now
    again = api.post(f"/v1/generations/{queued['run_id']}/cancel")
    assert again.status_code == 200
    run = again.json()
    assert run["status"] == "canceled" and run["started_at"] is None and run["images"] == []
    assert api.post("/v1/generations/gen_nosuchrun/cancel").status_code == 404


def test_cancel_running_run_stops_within_one_step(api):
    steps = 60
    run = submit(api, width=256, height=256, num_inference_steps=steps)
    current = wait_for_run(api, run["run_id"], statuses=("running",) + FINAL)
    while current["status"] == "running" and current["progress"] < 10:
        current = api.get(f"/v1/generations/{run['run_id']}").json()
    assert current["status"] == "running", current
    response = api.post(f"/v1/generations/{run['run_id']}/cancel")
    assert response.status_code == 202, response.text
    at_cancel = response.json()
    assert at_cancel["cancel_requested"] is True
    final = wait_for_run(api, run["run_id"], statuses=FINAL)
    assert final["status"] == "canceled", final
    assert final["images"] == [] and final["error"] is None
    # The stack writes progress at every step (no throttle), and once more where the render
    # stopped: at most the step in flight ran after the cancel.
    one_step = 100 / steps
    assert final["progress"] <= at_cancel["progress"] + one_step + 1, (at_cancel["progress"], final["progress"])
    assert final["progress"] < 99
    again = api.post(f"/v1/generations/{run['run_id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "canceled"


def test_retry_reruns_a_failed_run_under_a_new_id_and_refuses_a_completed_one(api):
    failed = wait_for_run(api, submit(api, model_id="broken-model")["run_id"], statuses=FINAL)
    assert failed["status"] == "failed"
    response = api.post(f"/v1/generations/{failed['run_id']}/retry")
    assert response.status_code == 202, response.text
    retried = response.json()
    assert retried["run_id"] != failed["run_id"] and retried["retry_of"] == failed["run_id"]
    assert retried["request"] == failed["request"]
    assert response.headers["location"] == f"/v1/generations/{retried['run_id']}"
    assert wait_for_run(api, retried["run_id"], statuses=FINAL)["status"] == "failed"

    done = wait_for_run(api, submit(api)["run_id"])
    refused = api.post(f"/v1/generations/{done['run_id']}/retry")
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/not-retryable"


def test_prefer_wait_returns_the_finished_run_or_the_current_state(api):
    response = api.post(
        "/v1/generations", json={"prompt": "a cup", "width": 64, "height": 64, "num_inference_steps": 2},
        headers={"Prefer": "wait=30"}, timeout=40,
    )
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=30"
    run = response.json()
    assert run["status"] == "completed" and run["image_url"]

    busy = blocker(api)
    response = api.post("/v1/generations", json={"prompt": "a cup", "width": 64, "height": 64}, headers={"Prefer": "wait=0.3"})
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    for run_id in (busy["run_id"], response.json()["run_id"]):
        api.post(f"/v1/generations/{run_id}/cancel")


def test_run_still_queued_past_its_start_deadline_expires_without_running(api):
    busy = blocker(api, steps=40)
    late = submit(api, start_within=0.5)
    assert late["start_deadline"] is not None
    run = wait_for_run(api, late["run_id"], statuses=FINAL, timeout=30)
    api.post(f"/v1/generations/{busy['run_id']}/cancel")
    assert run["status"] == "expired", run
    assert run["started_at"] is None and run["images"] == []


def test_high_priority_run_starts_before_a_backlog_of_low_ones(api):
    busy = blocker(api, steps=20)
    lows = [submit(api, priority="low", seed=i) for i in range(4)]
    high = submit(api, priority="high")
    # Queue positions count every high run ahead of a low one; estimates grow with the queue.
    # (Read from the back, so that the blocker's progress between reads cannot hide the growth.)
    views = [api.get(f"/v1/generations/{r['run_id']}").json() for r in reversed([high, *lows])][::-1]
    positions = [v["queue_position"] for v in views]
    assert positions == [0, 1, 2, 3, 4], positions
    estimates = [v["estimated_time"] for v in views]
    assert estimates == sorted(estimates) and estimates[0] < estimates[-1], estimates
    ended = [wait_for_run(api, r["run_id"]) for r in [busy, high, *lows]]
    assert all(r["status"] == "completed" for r in ended)
    high_start = ended[1]["started_at"]
    assert all(high_start < low["started_at"] for low in ended[2:]), [r["started_at"] for r in ended]
    assert ended[1]["queue_position"] is None


def test_listing_is_newest_first_with_cursor_pagination_and_a_status_filter(api):
    ids = [submit(api, seed=100 + i)["run_id"] for i in range(3)]
    # Another render group (its own step count): the worker that takes the three above renders
    # them together, and this one is still queued when its cancel lands.
    canceled = submit(api, seed=200, num_inference_steps=3)
    api.post(f"/v1/generations/{canceled['run_id']}/cancel")
    first = api.get("/v1/generations", params={"limit": 2}).json()
    assert [r["run_id"] for r in first["data"]] == [canceled["run_id"], ids[2]]
    second = api.get("/v1/generations", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["run_id"] for r in second["data"]] == [ids[1], ids[0]]
    only = api.get("/v1/generations", params={"status": "canceled", "limit": 100}).json()["data"]
    assert canceled["run_id"] in [r["run_id"] for r in only]
    assert {r["status"] for r in only} == {"canceled"}
    bad = api.get("/v1/generations", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    for run_id in ids:
        wait_for_run(api, run_id)


def test_server_sent_events_deliver_status_and_progress_in_order(api, stack):
    run = submit(api, width=128, height=128, num_inference_steps=30)
    events = []
    with httpx.stream("GET", f"{stack.api_url}/v1/generations/{run['run_id']}/events", timeout=60,
                      headers={"Authorization": f"Bearer {stack.key}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(parse_sse(response.iter_lines()))
    kinds = [kind for kind, _ in events]
    statuses = [data["status"] for kind, data in events if kind == "status"]
    progress = [data["progress"] for kind, data in events if kind == "progress"]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "completed", statuses
    assert "running" in statuses
    assert len(progress) >= 3 and progress == sorted(set(progress)), progress
    assert kinds[-1] == "run" and events[-1][1]["status"] == "completed" and events[-1][1]["image_url"]
    # progress events come between running and completed
    assert kinds.index("progress") > statuses.index("running") - 1


def test_events_of_an_unknown_run_is_a_404_problem(api):
    response = api.get("/v1/generations/gen_unknown/events")
    assert response.status_code == 404 and response.json()["type"] == "/problems/not-found"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "ftp://example.com/x", "http://[::1]/x"])
def test_webhook_urls_to_private_targets_are_refused_at_submit(api, url):
    response = api.post("/v1/generations", json={"prompt": "x", "webhook_url": url})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/unsafe-webhook-url", problem


def test_async_client_submits_follows_events_and_downloads(stack, tmp_path):
    import asyncio

    from client.client import AsyncRenderqClient

    async def scenario():
        async with AsyncRenderqClient(stack.api_url, api_key=stack.key) as rq:
            run = await rq.submit("a tin robot", width=64, height=64, num_inference_steps=4, seed=9)
            events = [event async for event in rq.events(run["run_id"])]
            final = await rq.wait(run["run_id"], timeout=30)
            return events, final, await rq.download(final, tmp_path)

    events, final, paths = asyncio.run(scenario())
    assert events[-1][0] == "run" and events[-1][1]["status"] == "completed"
    assert final["status"] == "completed" and len(paths) == 1 and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
