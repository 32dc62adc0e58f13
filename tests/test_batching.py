"""Micro-batching: a worker that starts a run takes the compatible runs queued behind it and
renders them in one model call, each run keeping its own progress, cancel, charge and images."""

from __future__ import annotations

import io
import json
import time

import fakeredis
import httpx
import numpy as np
import pytest
from PIL import Image

from pipelines.base import Job, batch_progress
from core.queue import ATTEMPT_HEADER, RUN_HEADER
from storage.claims import stopping_key
from storage.render_groups import group_id
from storage.records import Priority, RunRecord, RunStatus
from storage.runs import RunStore
from tests.conftest import wait_for_run

FINAL = ("completed", "failed", "canceled", "expired")
GROUP = group_id("text-to-image", "", {}, (64, 64, 2, 7.5))
STOPPING = stopping_key("host:1")
OTHER = group_id("text-to-image", "", {}, (64, 64, 4, 7.5))


@pytest.fixture
def store():
    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600)


def queued(store: RunStore, run_id: str, group: str | None = GROUP, priority: Priority = Priority.normal) -> RunRecord:
    return store.create(RunRecord(run_id=run_id, render_group=group, priority=priority, request={"num_inference_steps": 2}))


def test_a_worker_takes_the_queued_runs_of_its_group_oldest_first_up_to_the_limit(store):
    queued(store, "gen_a")
    for run_id in ("gen_b", "gen_c", "gen_d"):
        queued(store, run_id)
    queued(store, "gen_other", group=group_id("text-to-image", "", {}, (64, 64, 4, 7.5)))
    queued(store, "gen_high", priority=Priority.high)  # same group, another priority: never mixed
    outcome, taken = store.claim_group("gen_a", 1, "w1", 5, wanted=3)
    assert outcome == "claimed" and [r.run_id for r in taken] == ["gen_a", "gen_b", "gen_c"]
    assert all(r.status == RunStatus.running and r.worker == "w1" for r in taken)
    assert all(store.get(r).status == RunStatus.running for r in ("gen_b", "gen_c"))
    # A run taken this way is busy for its own queue message: that delivery becomes a no-op.
    assert store.claim("gen_b", 1, "w2", 5) == "busy"
    assert store.claim_group("gen_c", 1, "w2", 5, wanted=8) == ("busy", [])
    assert store.get("gen_d").status == RunStatus.queued  # not taken by a delivery that was a no-op
    assert store.get("gen_other").status == RunStatus.queued and store.get("gen_high").status == RunStatus.queued


def test_companions_skip_runs_already_taken_canceled_or_past_their_deadline(store):
    queued(store, "gen_a")
    queued(store, "gen_taken")
    queued(store, "gen_canceled")
    late = queued(store, "gen_late")
    queued(store, "gen_ok")
    store.redis.hset("renderq:run:gen_late", "start_deadline", str(late.created_at - 1))
    assert store.claim("gen_taken", 1, "w2", 5) == "claimed"  # by its own message, elsewhere
    assert store.cancel("gen_canceled") == "canceled"
    outcome, taken = store.claim_group("gen_a", 1, "w1", 5, wanted=8)
    assert outcome == "claimed" and [r.run_id for r in taken] == ["gen_a", "gen_ok"]
    assert store.get("gen_late").status == RunStatus.expired
    assert store.get("gen_taken").worker == "w2"


def with_message(store: RunStore, run_id: str, group: str | None = GROUP) -> RunRecord:
    """A queued run whose message (headers as core/queue.py writes them) is on the normal list,
    pushed with it as the API does."""
    payload = json.dumps({"headers": {RUN_HEADER: run_id, ATTEMPT_HEADER: 1}, "body": "…"})
    return store.create(RunRecord(run_id=run_id, render_group=group, request={"num_inference_steps": 2},
                                  queue_message=("renderq.render", payload)))


def test_a_worker_goes_on_with_the_runs_next_in_line_while_no_higher_priority_waits(store):
    for run_id in ("gen_a", "gen_b", "gen_c", "gen_d", "gen_e"):
        with_message(store, run_id)
    with_message(store, "gen_x", group=OTHER)
    store.redis.rpop("renderq.render")  # gen_a's message, delivered to the worker
    assert [r.run_id for r in store.claim_group("gen_a", 1, "w1", 5, wanted=2)[1]] == ["gen_a", "gen_b"]
    higher = ["renderq.render.high"]
    # gen_c's message is next on its list: the worker takes gen_c (and gen_d of its group) without it.
    assert [r.run_id for r in store.claim_next("renderq.render", higher, "w1", 5, 2, STOPPING)] == ["gen_c", "gen_d"]
    # A high-priority message waiting, or a message not of ours ahead: not its turn.
    store.redis.lpush("renderq.render.high", "{}")
    assert store.claim_next("renderq.render", higher, "w1", 5, 2, STOPPING) == []
    store.redis.delete("renderq.render.high")
    store.redis.rpush("renderq.render", '{"task": "something else"}')
    assert store.claim_next("renderq.render", higher, "w1", 5, 2, STOPPING) == []
    store.redis.rpop("renderq.render")
    # A worker in its warm shutdown takes nothing more.
    store.redis.set(STOPPING, "1")
    assert store.claim_next("renderq.render", higher, "w1", 5, 8, STOPPING) == []
    store.redis.delete(STOPPING)
    # Then the next ones in the queue's order, whatever their group: gen_e, then gen_x.
    assert [r.run_id for r in store.claim_next("renderq.render", higher, "w1", 5, 8, STOPPING)] == ["gen_e"]
    assert [r.run_id for r in store.claim_next("renderq.render", higher, "w1", 5, 8, STOPPING)] == ["gen_x"]
    assert store.redis.llen("renderq.render") == 0 and store.claim_next("renderq.render", higher, "w1", 5, 2, STOPPING) == []
    assert all(store.get(r).status == RunStatus.running for r in ("gen_c", "gen_d", "gen_e", "gen_x"))


def test_a_run_next_in_line_that_is_taken_is_left_to_its_delivery(store):
    with_message(store, "gen_a")
    assert store.claim("gen_a", 1, "w2", 5) == "claimed"  # by its own message, elsewhere
    assert store.claim_next("renderq.render", [], "w1", 5, 8, STOPPING) == []
    assert store.redis.llen("renderq.render") == 1 and store.get("gen_a").worker == "w2"


def test_one_canceled_job_of_a_call_drops_out_and_the_call_stops_when_none_is_left():
    calls = {"a": 0, "b": 0}

    def progress(name, stop_at):
        def on_progress(step, total):
            calls[name] += 1
            return step < stop_at

        return on_progress

    a, b = Job("a", on_progress=progress("a", 2)), Job("b", on_progress=progress("b", 4))
    step = batch_progress([a, b])
    assert [step(i, 5) for i in range(1, 6)] == [True, True, True, False, False]
    assert a.stopped and b.stopped and calls == {"a": 2, "b": 4}  # a is not asked again once it stopped


def _pixels(client: httpx.Client, run: dict) -> np.ndarray:
    data = client.get(run["images"][0]["url"]).content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.mark.integration
def test_compatible_queued_runs_render_in_one_call_with_the_images_they_get_alone(api):
    from tests.test_caller_runs import blocker, submit

    blocker(api)
    runs = [submit(api, prompt=f"a kite, number {i}", seed=40 + i) for i in range(4)]
    other = submit(api, num_inference_steps=3)  # another step count: another group
    done = [wait_for_run(api, run["run_id"], statuses=FINAL) for run in runs]
    assert [run["status"] for run in done] == ["completed"] * 4
    assert [run["timings"]["batch_size"] for run in done] == [4] * 4
    assert wait_for_run(api, other["run_id"], statuses=FINAL)["timings"]["batch_size"] == 1
    with httpx.Client() as plain:
        for i, run in enumerate(done):
            alone = wait_for_run(api, submit(api, prompt=f"a kite, number {i}", seed=40 + i)["run_id"], statuses=FINAL)
            assert alone["timings"]["batch_size"] == 1
            assert run["images"][0]["seed"] == 40 + i
            # One call or alone: the same image, up to CPU kernels' rounding (BENCHMARKS.md).
            assert np.abs(_pixels(plain, run) - _pixels(plain, alone)).max() <= 2


@pytest.mark.integration
def test_a_run_canceled_inside_a_batch_stops_alone(api):
    from tests.test_caller_runs import blocker, submit

    blocker(api)
    runs = [submit(api, prompt=f"a kite {i}", width=128, height=128, num_inference_steps=30, seed=i) for i in range(3)]
    first = wait_for_run(api, runs[0]["run_id"], statuses=("running",) + FINAL)
    deadline = time.monotonic() + 30
    while first["status"] == "running" and first["progress"] < 10 and time.monotonic() < deadline:
        first = api.get(f"/v1/generations/{runs[0]['run_id']}").json()
    assert first["status"] == "running", first
    assert api.post(f"/v1/generations/{runs[1]['run_id']}/cancel").status_code == 202
    done = [wait_for_run(api, run["run_id"], statuses=FINAL) for run in runs]
    assert [run["status"] for run in done] == ["completed", "canceled", "completed"]
    assert done[1]["images"] == [] and done[1]["progress"] < 99
    assert done[0]["timings"]["batch_size"] == done[2]["timings"]["batch_size"] == 3


def test_image_to_image_jobs_share_one_call_and_match_their_renders_alone(tiny_model):
    from diffusers import AutoPipelineForImage2Image

    from pipelines.device import choose_placement
    from pipelines.image_to_image.request import ImageToImageRequest
    from pipelines.loading import load_text_to_image
    from pipelines.registry import OPERATIONS, pipeline_class

    pipe = AutoPipelineForImage2Image.from_pipe(load_text_to_image(tiny_model, choose_placement("cpu")))
    pipe.set_progress_bar_config(disable=True)
    pipeline = pipeline_class(OPERATIONS["variations"])(pipe, "tiny")  # variations: image-to-image's call
    sources = [Image.effect_noise((64, 64), 40 + 10 * i).convert("RGB") for i in range(3)]
    requests = [ImageToImageRequest(prompt=f"kite {i}", image_asset_id="ast_x", strength=0.6, num_inference_steps=4,
                                    seed=i, num_images=1 + i % 2) for i in range(3)]
    assert len({r.render_key({"image": s.size}) for r, s in zip(requests, sources)}) == 1
    calls = []
    original = pipe.__call__
    pipe.__class__ = type("Counting", (type(pipe),), {"__call__": lambda self, **kw: calls.append(kw) or original(**kw)})
    batched = pipeline([Job(r, {"image": s}) for r, s in zip(requests, sources)])
    assert len(calls) == 1 and len(calls[0]["prompt"]) == 4 and len(calls[0]["image"]) == 4
    alone = [pipeline.render(r, None, {"image": s}) for r, s in zip(requests, sources)]
    assert [len(images) for images in batched] == [1, 2, 1]
    for together, single in zip(batched, alone):
        assert [i.seed for i in together] == [i.seed for i in single]
        for a, b in zip(together, single):
            assert np.abs(np.asarray(a.image, dtype=np.int16) - np.asarray(b.image, dtype=np.int16)).max() <= 2


def test_a_companion_s_queue_message_is_taken_off_its_queue(store):
    queued(store, "gen_a")
    store.redis.lpush("renderq.render", '{"task": "other"}')
    companion = RunRecord(run_id="gen_b", render_group=GROUP, request={"num_inference_steps": 2},
                          queue_message=("renderq.render", '{"task": "gen_b"}'))
    store.create(companion)  # its message is pushed with the run, a copy kept beside it
    assert store.redis.llen("renderq.render") == 2
    _, taken = store.claim_group("gen_a", 1, "w1", 5, wanted=8)
    assert [r.run_id for r in taken] == ["gen_a", "gen_b"]
    # Only the other message is left to deliver; the kept copy went with the claim.
    assert store.redis.lrange("renderq.render", 0, -1) == ['{"task": "other"}']
    assert store.redis.exists("renderq:queue-message:gen_b") == 0
