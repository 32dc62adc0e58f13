"""The benchmark's pieces that need no stack, and the two service changes it relies on:
the sleep test pipeline and the queue message the API writes itself."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from bench.report import render, targets
from bench.stats import percentile
from pipelines.text_to_image.request import TextToImageRequest
from devkit.sleep import SleepPipeline


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0, 10], 90) == pytest.approx(9)


def test_sleep_pipeline_reports_every_step_and_returns_images_of_the_requested_size():
    seen = []
    request = TextToImageRequest(prompt="x", width=64, height=96, num_inference_steps=3, seed=5, num_images=2)
    images = SleepPipeline(None, "sleep:0").render(request, lambda step, total: seen.append((step, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [(i.image.size, i.seed) for i in images] == [((64, 96), 5), ((64, 96), 6)]


def test_sleep_models_exist_only_when_test_pipelines_are_enabled(monkeypatch):
    from core.settings import Settings
    from worker.runtime import ModelUnavailable, Runtime

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enabled = Settings(test_pipelines=True, default_model="sleep:0.01", device="cpu")
    assert isinstance(Runtime(enabled).text_to_image(""), SleepPipeline)
    with pytest.raises(ModelUnavailable):
        Runtime(enabled.model_copy(update={"test_pipelines": False})).text_to_image("")


def test_render_message_is_the_message_send_task_publishes(redis_url):
    from core.settings import Settings
    from core.queue import RENDER_QUEUE, make_celery
    from core.queue import enqueue_render, render_message

    url = f"{redis_url}/15"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = make_celery(Settings(redis_url=url))
    enqueue_render(app, "gen_abc", 2)
    key, payload = render_message(app, "gen_abc", 2)
    assert key == RENDER_QUEUE
    [sent] = [json.loads(raw) for raw in client.lrange(RENDER_QUEUE, 0, -1)]
    ours = json.loads(payload)
    client.flushdb()
    for message in (sent, ours):
        assert message["headers"]["task"] == "renderq.render"
        assert message["properties"]["delivery_info"]["routing_key"] == RENDER_QUEUE
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(sent["body"]))
    volatile = {"id", "root_id", "origin", "ignore_result"}
    assert {k: v for k, v in ours["headers"].items() if k not in volatile} == {k: v for k, v in sent["headers"].items() if k not in volatile}
    assert set(ours) == set(sent) and set(ours["properties"]) == set(sent["properties"])


# render() describes the machine with platform.processor(), which runs `uname -p`: a process.
@pytest.mark.integration
def test_report_renders_targets_from_results():
    results = {
        "bare": {"median": 0.03, "seconds": [0.03] * 3, "images_per_second": 30.0, "images_per_cpu_second": 31.0,
                 "import_seconds": 2.0, "load_seconds": 0.5, "first_call_seconds": 0.05},
        "overhead": {"jobs": 3, "summary": {k: {"median": 0.01, "p90": 0.02} for k in (
            "end_to_end", "inference", "overhead", "client_seconds", "client_overhead", "overhead_while_polled",
            "queue", "upload", "other")}},
        "drain": {"jobs": 500, "measured": 300, "images_per_second": 28.0, "all_images_per_second": 28.0,
                  "images_per_cpu_second": 29.0, "inference_share": 0.9, "rss_job": 100,
                  "rss_child_at_early": 100, "rss_child_at_end": 104, "rss_samples": []},
        "scaling": {"model": "sleep:0.1", "job_seconds": 0.2, "workers": {"1": {"jobs": 1, "seconds": 1, "jobs_per_second": 5, "ratio": 1.0},
                                                                           "4": {"jobs": 4, "seconds": 1, "jobs_per_second": 19, "ratio": 3.8}}},
    }
    rows = {what: ok for what, _, _, ok in targets(results)}
    assert rows["Per-job overhead, median (run timestamps)"] is True
    assert any("RSS growth" in what and ok is True for what, ok in rows.items())
    assert any("4 workers" in what and ok is True for what, ok in rows.items())
    assert any("throughput" in what and ok is True for what, ok in rows.items())
    assert "| What | Target | Measured |" in render(results, {})
