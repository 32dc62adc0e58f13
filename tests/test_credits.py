"""Cost and credits: the price formula, POST /v1/estimate-cost, reservation at submit and the
one settlement of every run (completed, canceled, failed, expired, worker lost)."""

from __future__ import annotations

import json
import math
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError as BrokerUnavailable

from api.app import create_app
from api.inputs import validate_body
from api.bodies import BODIES
from pipelines.operation import PNG_1PX
from api.bodies import GenerationCreate
from api.templates import apply_template
from storage.credits import ACCOUNT_PREFIX, HOLD_CHECK_SECONDS, HOLD_RUNS, HOLDS, CreditStore
from storage.prices import DEFAULT_PRICES, PriceEntry, PriceTable, credits, millicredits
from core.problems import Problem
from storage.records import RunRecord, RunStatus, StoredImage
from storage.redis_ops import run
from storage.run_events import run_summary
from storage.runs import HEARTBEATS, RunStore
from core.settings import Settings
from tests.conftest import wait_for_run
from tests.images import data_url, noise
from devkit.procs import renderq_command
from tests.unit_services import unit_services

FINAL = ("completed", "failed", "canceled", "expired")
TABLE = PriceTable.from_settings(Settings())


# --- the price formula ---------------------------------------------------------------------
def test_price_is_rate_times_megapixels_times_steps_rounded_up_to_a_millicredit():
    rate = TABLE.entries["text-to-image"].per_megapixel_step
    # 512×512, 25 steps, 2 images: rate × 0.262144 MP × 25 × 2, in milli-credits, rounded up.
    expected = math.ceil(Decimal(rate) * 1000 * Decimal("0.524288") * 25)
    assert TABLE.price("text-to-image", {"num_inference_steps": 25}, 2 * 512 * 512) == expected
    # strength: the steps diffusers really runs, min(int(steps × strength), steps).
    assert TABLE.price("image-to-image", {"num_inference_steps": 20, "strength": 0.5}, 10**6) == int(rate * 10 * 1000)
    # Per-megapixel operations ignore steps.
    upscale = TABLE.entries["upscale"].per_megapixel
    assert TABLE.price("upscale", {"num_inference_steps": 50}, 2 * 10**6) == int(upscale * 2 * 1000)
    # Not listed: the default entry; underscores name the same operation.
    assert TABLE.entry("no-such-operation")[0] == "default"
    assert TABLE.entry("style_transfer")[0] == "style-transfer"


def test_credit_amounts_are_exact_milli_credits():
    assert millicredits("2.5") == 2500 and millicredits(3) == 3000 and credits(1234) == 1.234
    with pytest.raises(ValueError):
        millicredits("0.0001")
    with pytest.raises(ValueError):
        PriceEntry(per_megapixel_step=1, per_megapixel=1)
    with pytest.raises(ValueError):
        PriceTable({"text-to-image": PriceEntry(per_megapixel=1)})  # no default entry


def test_the_price_table_file_is_a_setting(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"operations": {"default": {"per_megapixel": 1}, "text-to-image": {"per_megapixel_step": 2}}}))
    table = PriceTable.from_settings(Settings(prices_file=path))
    assert table.price("text-to-image", {"num_inference_steps": 3}, 10**6) == 6000
    assert table.price("upscale", {}, 10**6) == 1000
    # The built-in table prices every operation of issue 7 explicitly.
    listed = json.loads(DEFAULT_PRICES.read_text())["operations"]
    for name in ("sketch", "structure", "style", "style-transfer", "search-replace", "search-recolor", "general-edit", "social-formats"):
        assert name in listed


def test_an_empty_data_file_setting_means_the_shipped_file(monkeypatch):
    from storage.platforms import PlatformCatalog
    from storage.templates import TemplateCatalog

    for name in ("PRICES", "TEMPLATES", "STYLE_PRESETS", "PLATFORMS"):
        monkeypatch.setenv(f"RENDERQ_{name}_FILE", "")
    settings = Settings()
    assert settings.prices_file == DEFAULT_PRICES
    assert PriceTable.from_settings(settings).entries == TABLE.entries
    assert TemplateCatalog.from_settings(settings).template("linkedin_post") is not None
    assert PlatformCatalog.from_settings(settings).get("instagram") is not None


# --- estimate endpoint and admission, in process (fakeredis) --------------------------------
@pytest.fixture
def unit(tmp_path):
    services = unit_services(tmp_path)
    with TestClient(create_app(services)) as client:
        yield client, services


def test_estimate_cost_answers_alwrity_shape_and_full_operation_bodies(unit):
    client, _ = unit
    answer = client.post("/v1/estimate-cost", json={
        "provider": "wavespeed", "model": "ideogram-v3-turbo", "operation": "generate", "num_images": 2,
        "width": 1200, "height": 624,
    })
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = TABLE.price("text-to-image", {"num_inference_steps": 25}, 2 * 1200 * 624)
    assert body["estimated_cost"] == credits(expected) and body["currency"] == "credits"
    assert (body["operation"], body["num_images"], body["steps"], body["provider"]) == ("text-to-image", 2, 25, "wavespeed")
    assert body["assumed"] is None and body["credits_remaining"] is None  # unmetered

    # Output size follows the input: given as its size, as the image itself, or assumed.
    by_size = client.post("/v1/estimate-cost", json={"operation": "upscale", "upscale_factor": 4, "input_width": 100, "input_height": 50}).json()
    assert (by_size["width"], by_size["height"], by_size["steps"]) == (400, 200, 1)
    assert by_size["estimated_cost"] == credits(TABLE.price("upscale", {}, 400 * 200))
    image = data_url(noise(96, 64))
    full = client.post("/v1/estimate-cost", json={"operation": "image-to-image", "prompt": "a mug", "image": image,
                                                   "num_inference_steps": 10, "strength": 0.5, "priority": "high"}).json()
    assert (full["width"], full["height"], full["steps"], full["assumed"]) == (96, 64, 5, None)
    assumed = client.post("/v1/estimate-cost", json={"operation": "remove_background"}).json()
    assert (assumed["width"], assumed["height"]) == (512, 512) and "512×512" in assumed["assumed"]
    assert client.post("/v1/estimate-cost", json={"operation": "variations", "image": PNG_1PX}).status_code == 422  # 1 px: too small


def test_every_operation_has_an_estimate_priced_from_its_entry(unit):
    client, _ = unit
    needs = {"outpaint": {"direction": "RIGHT"}, "upscale": {"upscale_factor": 2}, "social-formats": {"platforms": ["instagram"]}}
    for operation in BODIES:
        body = {"operation": operation, "input_width": 256, "input_height": 192} | needs.get(operation, {})
        answer = client.post("/v1/estimate-cost", json=body)
        assert answer.status_code == 200, (operation, answer.text)
        assert answer.json()["price_entry"] == operation and answer.json()["estimated_cost"] > 0


def test_estimate_cost_refuses_what_submit_would_refuse(unit):
    client, _ = unit
    for body in (
        {"operation": "no-such-op"},
        {"operation": "text-to-image", "width": 100},  # not a multiple of 8
        {"operation": "text-to-image", "bogus": 1},
        {"operation": "outpaint"},  # needs a direction
        {"operation": "upscale", "upscale_factor": 2, "input_width": 4000, "input_height": 4000},
        {"operation": "upscale", "upscale_factor": 2, "input_width": 100},
    ):
        response = client.post("/v1/estimate-cost", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_out_of_credits_is_a_402_and_nothing_is_queued(unit):
    client, services = unit
    services.credits.grant("", 1000)  # the one tenant of an auth-less deployment: 1 credit
    small = {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 2}
    big = small | {"width": 1024, "height": 1024, "num_inference_steps": 50}
    refused = client.post("/v1/generations", json=big)
    assert refused.status_code == 402, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/insufficient-credits"
    assert problem["estimated_cost"] == credits(TABLE.price("text-to-image", big, 1024 * 1024))
    assert problem["credits_remaining"] == 1.0 and "1.0 credits available" in problem["detail"]
    item = small | {"num_inference_steps": 10}
    assert 1000 < 200 * TABLE.price("text-to-image", item, 64 * 64)  # each affordable, together not
    batch = client.post("/v1/batches", json=[item] * 200)
    assert batch.status_code == 402 and "these 200 runs" in batch.json()["detail"]
    assert list(services.runs.redis.scan_iter("renderq:run:*")) == []
    assert services.credits.account("").reserved == 0
    accepted = client.post("/v1/generations", json=small)
    assert accepted.status_code == 202
    estimate = TABLE.price("text-to-image", small, 64 * 64)
    assert accepted.json()["credits_estimated"] == credits(estimate)
    assert services.credits.account("").reserved == estimate
    assert client.get("/v1/credits").json() == {
        "tenant": "", "metered": True, "balance": 1.0, "reserved": credits(estimate),
        "credits_remaining": credits(1000 - estimate), "currency": "credits",
    }


def test_every_route_that_submits_runs_documents_the_402(unit):
    client, _ = unit
    paths = client.get("/openapi.json").json()["paths"]
    submits = ["/v1/generations", "/v1/batches", "/v1/generations/{run_id}/retry", *(f"/v1/{op}" for op in BODIES if op != "text-to-image")]
    for path in submits:
        answer = paths[path]["post"]["responses"].get("402")
        assert answer is not None, path
        assert "application/problem+json" in answer["content"], path


def test_image_operations_reserve_the_price_of_their_real_output_size(unit):
    client, services = unit
    services.credits.grant("", 10_000)
    run = client.post("/v1/upscale", json={"image": data_url(noise(64, 48)), "upscale_factor": 2, "mode": "fast"})
    assert run.status_code == 202, run.text
    assert run.json()["credits_estimated"] == credits(TABLE.price("upscale", {}, 128 * 96))
    # Events and webhooks carry the charge with the rest of the run's summary.
    record = services.runs.get(run.json()["run_id"]).model_copy(update={"credits_used": 12, "credits_remaining": 9988})
    assert run_summary(record) | {"credits_used": 0.012, "credits_remaining": 9.988} == run_summary(record)


def test_a_batch_shows_its_credits_estimated_and_used_so_far(unit):
    client, services = unit
    services.credits.grant("", 10_000)
    services.runs.prices = TABLE
    item = {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 4}
    created = client.post("/v1/batches", json=[item, item | {"num_images": 2}, item]).json()
    price = TABLE.price("text-to-image", item, 64 * 64)
    total = 2 * price + TABLE.price("text-to-image", item, 2 * 64 * 64)  # each run rounded up on its own
    before = client.get(f"/v1/batches/{created['batch_id']}").json()
    assert (before["credits_estimated"], before["credits_used"]) == (credits(total), 0)
    first, _, third = created["run_ids"]
    services.runs.claim(first, 1, "w", 5)
    assert services.runs.complete(first, 1, [StoredImage(key="k", width=64, height=64, seed=1)], {})
    services.runs.cancel(third)  # canceled while queued: nothing
    after = client.get(f"/v1/batches/{created['batch_id']}").json()
    assert (after["credits_estimated"], after["credits_used"]) == (credits(total), credits(price))


def test_credits_required_refuses_a_tenant_never_granted_any(tmp_path):
    services = unit_services(tmp_path)
    services.settings = services.settings.model_copy(update={"credits_required": True})
    with TestClient(create_app(services)) as client:
        refused = client.post("/v1/generations", json={"prompt": "p", "width": 64, "height": 64})
    assert refused.status_code == 402 and "never been granted" in refused.json()["detail"]


# --- settlement: once per run, at its final state --------------------------------------------
@pytest.fixture
def store() -> RunStore:
    runs = RunStore(fakeredis.FakeRedis(decode_responses=True), retention_seconds=3600)
    runs.prices = TABLE
    return runs


def held_run(store: RunStore, run_id: str, estimate: int, tenant: str = "t", **request) -> RunRecord:
    assert run(store.redis, CreditStore.reserve_op(tenant, {run_id: estimate}, False)).held
    request = {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 4, **request}
    return store.create(RunRecord(run_id=run_id, tenant=tenant, request=request, credits_estimate=estimate, credits_held=True))


def test_each_final_state_charges_its_rule_once(store):
    credits_store = CreditStore(store.redis)
    credits_store.grant("t", 100_000)
    price = TABLE.price("text-to-image", {"num_inference_steps": 4}, 64 * 64)
    image = StoredImage(key="k", width=64, height=64, seed=1)

    held_run(store, "gen_done", price)
    store.claim("gen_done", 1, "w", 5)
    assert store.complete("gen_done", 1, [image], {})
    assert not store.complete("gen_done", 1, [image], {})  # a redelivered finish: no second charge
    assert not store.fail("gen_done", 1, Problem.of("render-failed", 500))
    done = store.get("gen_done")
    assert (done.credits_used, done.credits_remaining) == (price, 100_000 - price)

    held_run(store, "gen_cut", 1000)
    store.claim("gen_cut", 1, "w", 5)
    store.report_progress("gen_cut", 37)
    store.cancel("gen_cut")
    assert store.stopped("gen_cut", 1)
    assert store.get("gen_cut").credits_used == 370  # the share of steps that ran, rounded down

    held_run(store, "gen_bad", 1000)
    store.claim("gen_bad", 1, "w", 5)
    assert store.fail("gen_bad", 1, Problem.of("render-failed", 500))
    held_run(store, "gen_queued", 1000)
    assert store.cancel("gen_queued") == "canceled" and store.cancel("gen_queued") == "canceled"
    held_run(store, "gen_late", 1000)
    store.redis.hset("renderq:run:gen_late", "start_deadline", time.time() - 1)
    assert store.claim("gen_late", 1, "w", 5) == "expired"
    held_run(store, "gen_orphan", 1000)
    store.discard("gen_orphan")  # never enqueued: the reservation goes back
    for run_id in ("gen_bad", "gen_queued", "gen_late"):
        assert store.get(run_id).credits_used == 0

    account = credits_store.account("t")
    assert account.reserved == 0 and account.balance == 100_000 - price - 370


def test_a_run_re_rendered_after_its_worker_died_is_charged_once(store):
    CreditStore(store.redis).grant("t", 10_000)
    price = TABLE.price("text-to-image", {"num_inference_steps": 4}, 64 * 64)
    held_run(store, "gen_a", price)
    store.claim("gen_a", 1, "w1", 5)
    store.redis.zadd(HEARTBEATS, {"gen_a": time.time() - 60})
    assert store.reap_stale(5, 3) == [("gen_a", 2)]
    assert store.get("gen_a").credits_used is None  # back in the queue: not settled
    store.claim("gen_a", 2, "w2", 5)
    image = StoredImage(key="k", width=64, height=64, seed=1)
    assert not store.complete("gen_a", 1, [image], {})  # the first worker came back: superseded
    assert store.complete("gen_a", 2, [image], {})
    assert CreditStore(store.redis).account("t").balance == 10_000 - price
    # A run whose worker died on every attempt ends failed, charged nothing.
    held_run(store, "gen_b", price)
    store.claim("gen_b", 1, "w1", 5)
    store.redis.zadd(HEARTBEATS, {"gen_b": time.time() - 60})
    assert store.reap_stale(5, 1) == []
    assert store.get("gen_b").status == RunStatus.failed and store.get("gen_b").credits_used == 0
    assert CreditStore(store.redis).account("t").reserved == 0


def test_completed_is_never_charged_more_than_its_estimate(store):
    CreditStore(store.redis).grant("t", 10_000)
    held_run(store, "gen_a", 5)
    store.claim("gen_a", 1, "w", 5)
    store.complete("gen_a", 1, [StoredImage(key="k", width=512, height=512, seed=1)], {})
    assert store.get("gen_a").credits_used == 5


@pytest.mark.parametrize("role", ["mask", "control"])
def test_a_mask_or_control_map_returned_besides_the_image_is_not_charged(store, role):
    CreditStore(store.redis).grant("t", 10_000)
    held_run(store, "gen_a", 1000, num_inference_steps=4)
    store.claim("gen_a", 1, "w", 5)
    image = StoredImage(key="k0", width=64, height=64, seed=1)
    extra = StoredImage(key="k1", width=128, height=128, seed=0, role=role)
    store.complete("gen_a", 1, [image, extra], {})
    assert store.get("gen_a").credits_used == TABLE.price("text-to-image", {"num_inference_steps": 4}, 64 * 64)


def test_a_reservation_whose_runs_were_never_written_comes_back_once(store):
    """Redis failed between the reservation and the write of the runs: no record ever settles it."""
    credits_store = CreditStore(store.redis)
    credits_store.grant("t", 10_000)
    assert run(store.redis, CreditStore.reserve_op("t", {"gen_a": 300, "gen_b": 200}, False)).held
    assert store.release_orphaned_credits() == []  # not due: its records may be on their way
    later = time.time() + HOLD_CHECK_SECONDS + 1
    assert sorted(store.release_orphaned_credits(now=later)) == ["gen_a", "gen_b"]
    assert store.release_orphaned_credits(now=later) == []
    account = credits_store.account("t")
    assert (account.balance, account.reserved) == (10_000, 0)
    assert store.redis.zcard(HOLDS) == store.redis.hlen(HOLD_RUNS) == 0


def test_a_queued_run_whose_record_expired_gives_its_reservation_back(store):
    credits_store = CreditStore(store.redis)
    credits_store.grant("t", 10_000)
    held_run(store, "gen_gone", 700)
    held_run(store, "gen_waiting", 500)
    later = time.time() + HOLD_CHECK_SECONDS + 1
    assert store.release_orphaned_credits(now=later) == []  # both still queued: checked again later
    assert store.redis.zscore(HOLDS, "gen_waiting") > later
    store.redis.delete("renderq:run:gen_gone")  # its 24-hour TTL ran out before it started
    assert store.release_orphaned_credits(now=later + HOLD_CHECK_SECONDS + 1) == ["gen_gone"]
    assert (credits_store.account("t").balance, credits_store.account("t").reserved) == (10_000, 500)
    # The one still queued settles as usual when it ends, with nothing released twice.
    store.cancel("gen_waiting")
    assert (credits_store.account("t").balance, credits_store.account("t").reserved) == (10_000, 0)


def test_a_run_written_after_its_reservation_was_given_back_is_charged_without_releasing_twice(store):
    credits_store = CreditStore(store.redis)
    credits_store.grant("t", 10_000)
    held_run(store, "gen_slow", 1000)
    held_run(store, "gen_other", 400)
    store.redis.hdel(HOLD_RUNS, "gen_slow")  # as if the reaper had found no record yet
    store.redis.hincrby("renderq:credits:t", "reserved", -1000)
    store.claim("gen_slow", 1, "w", 5)
    image = StoredImage(key="k", width=64, height=64, seed=1)
    assert store.complete("gen_slow", 1, [image], {})
    used = store.get("gen_slow").credits_used
    account = credits_store.account("t")
    assert (account.balance, account.reserved) == (10_000 - used, 400)  # gen_other's hold untouched
    assert store.get("gen_slow").credits_remaining == account.available


def test_the_reaper_gives_back_orphaned_reservations_and_settles_expired_runs(store):
    from worker.reaper import reap_once

    CreditStore(store.redis).grant("t", 10_000)
    assert run(store.redis, CreditStore.reserve_op("t", {"gen_lost": 250}, False)).held
    store.redis.zadd(HOLDS, {"gen_lost": time.time() - 1})  # due
    # The same tick expires a run past its start deadline, which settles it.
    assert run(store.redis, CreditStore.reserve_op("t", {"gen_late": 400}, False)).held
    store.create(RunRecord(
        run_id="gen_late", tenant="t", request={"prompt": "p"}, credits_estimate=400, credits_held=True,
        start_deadline=time.time() - 1,
    ))
    reap_once(None, store, Settings())
    assert store.get("gen_late").status == RunStatus.expired and store.get("gen_late").credits_used == 0
    assert CreditStore(store.redis).account("t").reserved == 0


def test_a_refusal_after_reserving_gives_back_exactly_its_runs(store):
    CreditStore(store.redis).grant("t", 10_000)
    run(store.redis, CreditStore.reserve_op("t", {"gen_kept": 100}, False))
    run(store.redis, CreditStore.reserve_op("t", {"gen_x": 300, "gen_y": 400}, False))
    run(store.redis, CreditStore.release_op(["gen_x", "gen_y"]))
    run(store.redis, CreditStore.release_op(["gen_x", "gen_y"]))  # twice: nothing more
    assert CreditStore(store.redis).account("t").reserved == 100
    assert store.redis.hkeys(HOLD_RUNS) == ["gen_kept"]


def test_reapers_of_several_workers_give_each_reservation_back_once(redis_url):
    client = redis.Redis.from_url(f"{redis_url}/0", decode_responses=True)  # no stack uses db 0
    runs, credits_store = RunStore(client, 3600), CreditStore(client)
    tenant = f"reconcile-{time.time_ns()}"
    credits_store.grant(tenant, 100_000)
    estimates = {f"gen_{tenant}_{i}": 1 + i for i in range(200)}
    assert run(client, CreditStore.reserve_op(tenant, estimates, False)).held
    later = time.time() + HOLD_CHECK_SECONDS + 1

    def reaper(_) -> list[str]:
        released = []
        while batch := runs.release_orphaned_credits(now=later, limit=7):
            released += batch
        return released

    with ThreadPoolExecutor(8) as pool:
        released = [run_id for batch in pool.map(reaper, range(8)) for run_id in batch]
    assert sorted(released) == sorted(estimates)  # each once
    account = credits_store.account(tenant)
    client.delete(ACCOUNT_PREFIX + tenant)
    assert (account.balance, account.reserved) == (100_000, 0)


def test_a_broker_failure_at_submit_gives_the_reservation_back(unit, monkeypatch):
    client, services = unit
    services.credits.grant("", 10_000)

    def broker_down(*args, **kwargs):
        raise BrokerUnavailable("connection refused")

    monkeypatch.setattr("api.submission.enqueue_render", broker_down)
    answer = client.post("/v1/generations", json={"prompt": "p", "width": 64, "height": 64})
    assert answer.status_code == 503, answer.text
    account = services.credits.account("")
    assert (account.balance, account.reserved) == (10_000, 0)
    assert services.runs.redis.hlen(HOLD_RUNS) == 0


# --- through the real stack -------------------------------------------------------------------
SMALL = {"prompt": "a red cube", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 1}


def credits_cli(stack, *args: str) -> dict:
    done = subprocess.run(renderq_command("credits", *args), env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_completed_run_reports_exactly_what_it_cost_and_what_is_left(stack):
    key = stack.create_key("credits-a")
    assert credits_cli(stack, "grant", "credits-a", "10") == {
        "tenant": "credits-a", "metered": True, "balance": 10.0, "reserved": 0.0, "credits_remaining": 10.0,
    }
    with stack.client(key=key) as client:
        estimate = client.post("/v1/estimate-cost", json=SMALL | {"num_images": 2}).json()
        submitted = client.post("/v1/generations", json=SMALL | {"num_images": 2})
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["credits_estimated"] == estimate["estimated_cost"]
        run = wait_for_run(client, submitted.json()["run_id"])
        listed = client.get("/v1/generations").json()["data"][0]
        balance = client.get("/v1/credits").json()
    price = TABLE.price("text-to-image", SMALL, 2 * 64 * 64)
    assert run["status"] == "completed" and run["credits_used"] == credits(price) == estimate["estimated_cost"]
    assert run["credits_remaining"] == credits(10_000 - price) == balance["credits_remaining"]
    assert listed["credits_used"] == run["credits_used"]
    assert credits_cli(stack, "show", "credits-a")["balance"] == credits(10_000 - price)


def test_canceled_runs_pay_for_the_steps_that_ran_and_failed_runs_pay_nothing(stack):
    key = stack.create_key("credits-b")
    CreditStore(stack.redis()).grant("credits-b", 100_000)
    with stack.client(key=key) as client:
        failed = client.post("/v1/generations", json=SMALL | {"model_id": "broken-model"}).json()
        long = client.post("/v1/generations", json=SMALL | {"width": 128, "height": 128, "num_inference_steps": 100}).json()
        failed = wait_for_run(client, failed["run_id"], statuses=FINAL)
        current = wait_for_run(client, long["run_id"], statuses=("running",) + FINAL)
        while current["status"] == "running" and current["progress"] < 5:
            current = client.get(f"/v1/generations/{long['run_id']}").json()
        client.post(f"/v1/generations/{long['run_id']}/cancel")
        canceled = wait_for_run(client, long["run_id"], statuses=FINAL)
    assert failed["status"] == "failed" and failed["credits_used"] == 0
    assert canceled["status"] == "canceled" and 0 < canceled["progress"] < 99
    estimate = TABLE.price("text-to-image", SMALL, 128 * 128) * 50  # 100 steps: 50× the 2-step price, ± rounding
    assert abs(canceled["credits_estimated"] * 1000 - estimate) <= 50
    charged = int(canceled["credits_estimated"] * 1000) * canceled["progress"] // 100
    assert canceled["credits_used"] == credits(charged)
    account = CreditStore(stack.redis()).account("credits-b")
    assert account.reserved == 0 and account.balance == 100_000 - charged
    assert canceled["credits_remaining"] == credits(account.available)


def test_concurrent_submits_cannot_overdraw(stack):
    key = stack.create_key("credits-c")
    price = TABLE.price("text-to-image", SMALL, 64 * 64)
    CreditStore(stack.redis()).grant("credits-c", 3 * price)
    with stack.client(key=key) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/generations", json=SMALL).status_code, range(12)))
        assert sorted(answers) == [202] * 3 + [402] * 9
        runs = client.get("/v1/generations").json()["data"]
        for run in runs:
            wait_for_run(client, run["run_id"])
    account = CreditStore(stack.redis()).account("credits-c")
    assert (account.balance, account.reserved) == (0, 0)


def test_a_template_is_priced_at_the_size_and_quality_it_applies(unit):
    """estimate-cost applies template_id as submit does: linkedin_post renders 1200×632 (its
    628 rounded up to 8, then cropped) at its quality tier's steps."""
    client, services = unit
    plain = client.post("/v1/estimate-cost", json={"operation": "text-to-image"}).json()
    templated = client.post("/v1/estimate-cost", json={"operation": "text-to-image", "template_id": "linkedin_post"}).json()
    assert (templated["width"], templated["height"]) == (1200, 632), templated
    assert templated["estimated_cost"] > plain["estimated_cost"]
    # What submit reserves for the same body is what the estimate said.
    body, _ = apply_template(validate_body(GenerationCreate, {"prompt": "x", "template_id": "linkedin_post"}), services.templates)
    request = body.to_request()
    expected = TABLE.price("text-to-image", request.model_dump(), request.num_images * request.width * request.height)
    assert templated["estimated_cost"] == credits(expected)
    unknown = client.post("/v1/estimate-cost", json={"operation": "text-to-image", "template_id": "no_such_template"})
    assert unknown.status_code == 422 and unknown.json()["type"] == "/problems/unknown-template"


def test_social_formats_are_priced_at_each_format_size(unit):
    client, _ = unit
    answer = client.post("/v1/estimate-cost", json={
        "operation": "social-formats", "platforms": ["instagram", "youtube"], "input_width": 640, "input_height": 480,
    }).json()
    # Instagram's default format is 1080×1080, YouTube's 1280×720 (storage/data/platforms.json).
    assert answer["estimated_cost"] == credits(TABLE.price("social-formats", {}, 1080 * 1080 + 1280 * 720)), answer


def test_a_tenant_found_unmetered_is_rechecked_after_a_second_not_on_every_submit(unit, monkeypatch):
    """The reservation round trip is skipped for a tenant this process just found unmetered; a
    first grant applies to runs submitted once UNMETERED_RECHECK_SECONDS have passed."""
    from api import costs

    client, services = unit
    small = {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 2}
    estimate = TABLE.price("text-to-image", small, 64 * 64)
    assert client.post("/v1/generations", json=small).status_code == 202  # finds "" unmetered
    services.credits.grant("", 10_000)
    within = client.post("/v1/generations", json=small).json()
    assert within["credits_estimated"] == credits(estimate) and services.credits.account("").reserved == 0
    later = time.monotonic() + costs.UNMETERED_RECHECK_SECONDS + 0.01
    monkeypatch.setattr(costs.time, "monotonic", lambda: later)
    after = client.post("/v1/generations", json=small).json()
    assert services.credits.account("").reserved == estimate
    assert after["credits_estimated"] == credits(estimate)
