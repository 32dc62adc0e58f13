"""Fast unit tests of the caller's-side helpers (no processes; fakeredis where Redis is needed)."""

from __future__ import annotations

import time

import fakeredis
import pytest
from standardwebhooks import Webhook

from storage.records import Priority, RunRecord, RunStatus
from storage.render_stats import RenderStats, load_stats, record_render
from storage.run_index import decode_cursor, encode_cursor
from storage.runs import ProgressThrottle, RunStore
from storage.webhook_targets import UnsafeWebhookUrl, check_webhook_url
from worker.webhooks import JITTER, next_delay, retry_after_seconds, retryable, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_follows_standard_webhooks_and_verifies_with_its_library():
    body = '{"type":"run.completed","data":{"run_id":"gen_1"}}'
    headers = sign(SECRET, "msg_1", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers)["data"]["run_id"] == "gen_1"
    with pytest.raises(Exception):
        Webhook(SECRET).verify(body.replace("gen_1", "gen_2"), headers)


def test_retry_schedule_jitter_retry_after_and_which_answers_retry():
    schedule = [0, 5, 300]
    for attempts, base in enumerate(schedule):
        delay = next_delay(schedule, attempts, None)
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert next_delay(schedule, 3, None) is None  # bounded attempts
    assert next_delay(schedule, 1, 120) == 120  # Retry-After later than the schedule wins
    assert retry_after_seconds("7", 0) == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10
    assert retry_after_seconds("soon", 0) is None
    assert [retryable(code) for code in (0, 429, 500, 503, 410, 404, 301)] == [True, True, True, True, False, False, False]


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://10.0.0.1/", "http://169.254.169.254/latest", "http://[::1]/", "http://[fe80::1]/", "ftp://8.8.8.8/", "http://user:pw@8.8.8.8/", "https:///nohost"])
def test_ssrf_guard_refuses_private_targets_and_other_schemes(url):
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url)


def test_ssrf_guard_allows_public_addresses_and_private_ones_when_allowed():
    check_webhook_url("https://8.8.8.8/hook")
    check_webhook_url("http://127.0.0.1:9000/hook", allow_private=True)


def test_cursor_round_trip():
    assert decode_cursor(encode_cursor(1700000000.123456, "gen_abc")) == (1700000000.123456, "gen_abc")
    with pytest.raises(ValueError):
        decode_cursor("garbage")


@pytest.fixture
def store():
    return RunStore(fakeredis.FakeRedis(decode_responses=True), 3600)


def test_progress_callback_stops_the_render_once_cancel_is_requested(store):
    store.create(RunRecord(run_id="gen_a", request={"num_inference_steps": 10}))
    assert store.claim("gen_a", 1, "w1", 5) == "claimed"
    throttle = ProgressThrottle(store, "gen_a", 0)
    assert throttle(1, 10) is True
    assert store.cancel("gen_a") == "requested"
    assert throttle(2, 10) is False
    assert store.get("gen_a").progress == 20
    from core.problems import Problem

    store.fail("gen_a", 1, Problem.of("render-failed", 500))
    record = store.get("gen_a")
    assert record.status == RunStatus.canceled and record.error is None
    assert store.cancel("gen_a") == "canceled"  # already final: its status


def test_queue_positions_put_every_higher_priority_run_first(store):
    for run_id, priority in [("gen_l1", Priority.low), ("gen_n1", Priority.normal), ("gen_h1", Priority.high), ("gen_l2", Priority.low)]:
        store.create(RunRecord(run_id=run_id, priority=priority, request={"num_inference_steps": 10, "width": 100, "height": 100}))
    stats = RenderStats(step_seconds={"100x100": 0.5}, overhead=0.1)
    positions = {r: store.index.queue_position(store.get(r), stats)[0] for r in ("gen_h1", "gen_n1", "gen_l1", "gen_l2")}
    assert positions == {"gen_h1": 0, "gen_n1": 1, "gen_l1": 2, "gen_l2": 3}
    assert store.index.queue_position(store.get("gen_l2"), stats)[1] == pytest.approx(3 * (10 * 0.5 + 0.1))
    store.cancel("gen_h1")
    assert store.index.queue_position(store.get("gen_l1"), stats)[0] == 1
    assert store.index.queue_position(store.get("gen_h1"), stats) is None


def test_render_stats_time_each_size_from_what_workers_measured(store):
    request = {"width": 64, "height": 64, "num_inference_steps": 4, "num_images": 2}
    record_render(store.redis, request, {"inference_seconds": 0.8, "total_seconds": 1.0, "load_seconds": 0.05})
    stats = load_stats(store.redis, seconds_per_unit=1.0)
    assert stats.seconds_per_step(request) == pytest.approx(0.1)
    assert stats.overhead == pytest.approx(0.15)
    assert stats.run_seconds(request, progress=50) == pytest.approx(8 * 0.1 * 0.5 + 0.15)
    # An unmeasured size is scaled from the nearest measured one by pixel count.
    assert stats.seconds_per_step({"width": 128, "height": 64}) == pytest.approx(0.2)
    record_render(store.redis, request, {"inference_seconds": 1.6, "total_seconds": 1.75})
    assert load_stats(store.redis, 1.0).seconds_per_step(request) == pytest.approx(0.8 * 0.1 + 0.2 * 0.2)


def test_a_run_past_its_start_deadline_is_expired_not_claimed(store):
    store.create(RunRecord(run_id="gen_late", start_deadline=time.time() - 1))
    assert store.claim("gen_late", 1, "w1", 5) == "expired"
    assert store.get("gen_late").status == RunStatus.expired


def test_a_run_requeued_after_its_worker_died_is_not_expired_by_its_start_deadline(store):
    store.create(RunRecord(run_id="gen_re", start_deadline=time.time() + 0.2))
    assert store.claim("gen_re", 1, "w1", 5) == "claimed"
    store.redis.zadd("renderq:heartbeats", {"gen_re": time.time() - 60})  # the worker fell silent
    assert store.reap_stale(stale_after=5, max_attempts=3) == [("gen_re", 2)]
    time.sleep(0.3)
    assert store.expire_overdue() == []
    assert store.claim("gen_re", 2, "w2", 5) == "claimed"


def test_image_operations_take_priority_deadline_and_webhook_too(tmp_path):
    import base64

    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.images import encode, noise
    from tests.unit_services import unit_services

    services = unit_services(tmp_path)
    image = "data:image/png;base64," + base64.b64encode(encode(noise(16, 16))).decode()
    body = {"image": image, "upscale_factor": 2, "mode": "fast", "priority": "high", "start_within": 30,
            "webhook_url": "https://8.8.8.8/hook", "webhook_events": ["completed"]}
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        response = client.post("/v1/upscale", json=body)
        assert response.status_code == 202, response.text
        run = response.json()
        assert run["priority"] == "high" and run["start_deadline"] and run["queue_position"] == 0
        assert run["webhook"] == {"url": "https://8.8.8.8/hook", "events": ["completed"], "attempts": 0, "last_status_code": None}
        assert "priority" not in run["request"] and "webhook_url" not in run["request"]
        refused = client.post("/v1/upscale", json=body | {"webhook_url": "http://192.168.1.1/"})
        assert refused.status_code == 422 and refused.json()["type"] == "/problems/unsafe-webhook-url"


def test_delivery_checks_the_url_again_and_gives_up_past_the_max_age(store):
    from core.settings import Settings
    from worker.webhooks import deliver_once

    settings = Settings(webhook_allow_private=False)
    unsafe = store.webhooks.file("http://127.0.0.1:9/hook", "run.completed", {"run_id": "gen_x"}, "renderq:run:gen_x")
    assert deliver_once(store.webhooks, settings, unsafe) == "unsafe"
    assert store.webhooks.get(unsafe)["state"] == "gave-up" and store.webhooks.get(unsafe)["attempts"] == "0"

    # Nothing listens on port 9: no answer, retried until the schedule or the max age runs out.
    allowed = Settings(webhook_allow_private=True, webhook_retry_schedule=[0, 1, 1], webhook_timeout=1, webhook_max_age=3600)
    message = store.webhooks.file("http://127.0.0.1:9/hook", "run.completed", {"run_id": "gen_x"}, "renderq:run:gen_x")
    assert deliver_once(store.webhooks, allowed, message).startswith("retry-in:")
    assert deliver_once(store.webhooks, allowed, message).startswith("retry-in:")
    assert deliver_once(store.webhooks, allowed, message) == "exhausted"
    assert store.webhooks.get(message)["last_status"] == "0"
    old = store.webhooks.file("http://127.0.0.1:9/hook", "run.completed", {}, "renderq:run:gen_x")
    store.redis.hset("renderq:webhook:" + old, "created_at", time.time() - 7200)
    assert deliver_once(store.webhooks, allowed, old) == "exhausted"
    assert store.webhooks.get(old)["attempts"] == "0"  # past the max age: not even tried
