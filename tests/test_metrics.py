"""GET /metrics against the real stack: numbers written by the worker process reach the
API's Prometheus endpoint through Redis. (Failures by problem: tests/test_faults.py.)"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for_run

SMALL = {"prompt": "metrics", "width": 64, "height": 64, "num_inference_steps": 3}


def scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_runs_and_time_jobs_done_by_the_worker(stack, api):
    before = scrape(api)
    done = wait_for_run(api, api.post("/v1/generations", json=SMALL).json()["run_id"])
    assert done["status"] == "completed"
    after = scrape(api)

    def delta(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("renderq_runs_total", status="queued") >= 1
    assert delta("renderq_runs_total", status="running") >= 1
    assert delta("renderq_runs_total", status="completed") >= 1
    assert delta("renderq_job_seconds_count", operation="text-to-image") >= 1
    assert delta("renderq_denoising_step_seconds_count", operation="text-to-image") >= 1
    for stage in ("queue", "load", "inference", "upload"):
        assert delta("renderq_stage_seconds_count", operation="text-to-image", stage=stage) >= 1
    assert after[("renderq_job_seconds_bucket", (("le", "+Inf"), ("operation", "text-to-image")))] == after[("renderq_job_seconds_count", (("operation", "text-to-image"),))]
    assert after[("renderq_workers", ())] >= 1
    assert ("renderq_queue_depth", (("queue", "renderq.render"),)) in after
    assert ("renderq_runs_running", ()) in after
    assert ("renderq_webhook_deliveries_total", (("outcome", "delivered"),)) in after
    # GPU memory has samples only from CUDA workers; the family is always there.
    assert "# TYPE renderq_gpu_memory_bytes gauge" in api.get("/metrics").text


def test_metrics_need_no_key_and_readyz_names_dependencies(stack):
    with stack.client(key="") as anonymous:
        assert anonymous.get("/metrics").status_code == 200
        ready = anonymous.get("/readyz").json()
    assert ready["checks"] == {"redis": "ok", "storage": "ok"}


def test_readyz_names_a_separate_broker_that_is_down(tmp_path):
    from fastapi.testclient import TestClient

    from tests.inprocess import inprocess_app
    from core.queue import make_celery

    app, services, _ = inprocess_app(str(tmp_path), broker_url="redis://127.0.0.1:1/0")
    services.celery = make_celery(services.settings)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("down") and response.json()["checks"]["redis"] == "ok"
