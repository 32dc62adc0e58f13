"""Submit → Celery worker → diffusers → S3 PNG → status, against real processes."""

from __future__ import annotations

import io
import time
from datetime import datetime

import httpx
import redis
from PIL import Image

from pipelines.png import read_parameters
from tests.conftest import wait_for_run

MUG = "A blue ceramic coffee mug on a wooden table"


def submit(api: httpx.Client, **fields) -> dict:
    response = api.post("/v1/generations", json={"prompt": MUG, "width": 64, "height": 64, "num_inference_steps": 4, "seed": 7} | fields)
    assert response.status_code == 202, response.text
    return response.json() | {"_location": response.headers.get("location")}


def test_submit_answers_queued_at_once_with_location_and_estimate(api):
    started = time.perf_counter()
    run = submit(api)
    assert time.perf_counter() - started < 2
    assert run["status"] == "queued"
    assert run["run_id"].startswith("gen_")
    assert run["_location"] == f"/v1/generations/{run['run_id']}"
    assert run["estimated_time"] > 0
    assert run["request"]["seed"] == 7 and run["request"]["prompt"] == MUG
    created = datetime.fromisoformat(run["created_at"])
    expires = datetime.fromisoformat(run["expires_at"])
    assert (expires - created).total_seconds() == 24 * 3600


def test_run_goes_queued_running_with_rising_progress_then_completed(api):
    run = submit(api, width=128, height=128, num_inference_steps=40)
    seen: list[tuple[str, int]] = [(run["status"], run["progress"])]
    deadline = time.monotonic() + 60
    while seen[-1][0] not in ("completed", "failed") and time.monotonic() < deadline:
        current = api.get(f"/v1/generations/{run['run_id']}").json()
        if (current["status"], current["progress"]) != seen[-1]:
            seen.append((current["status"], current["progress"]))
        time.sleep(0.01)
    statuses = [status for status, _ in seen]
    assert statuses[0] == "queued" and statuses[-1] == "completed", seen
    running = [progress for status, progress in seen if status == "running"]
    assert len(running) >= 3, seen
    assert running == sorted(running) and running[-1] > running[0], seen
    assert all(0 <= p < 100 for p in running)
    assert seen[-1][1] == 100


def test_completed_run_serves_a_png_of_the_requested_size_from_a_presigned_url(api):
    run = wait_for_run(api, submit(api, width=64, height=96, num_images=2, seed=11)["run_id"])
    assert run["status"] == "completed", run
    assert run["image_url"] == run["images"][0]["url"]
    assert [image["seed"] for image in run["images"]] == [11, 12]
    for image in run["images"]:
        response = httpx.get(image["url"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as png:
            assert png.format == "PNG" and png.size == (64, 96)
        parameters = read_parameters(response.content)
        assert parameters["prompt"] == MUG and parameters["seed"] == image["seed"]
    assert {"queue_seconds", "inference_seconds", "upload_seconds", "total_seconds"} <= set(run["timings"])
    assert run["started_at"] and run["completed_at"] and run["estimated_time"] is None


def test_same_seed_gives_the_same_png_bytes(api):
    first = wait_for_run(api, submit(api, seed=1234)["run_id"])
    second = wait_for_run(api, submit(api, seed=1234)["run_id"])
    third = wait_for_run(api, submit(api, seed=1235)["run_id"])
    a, b, c = (httpx.get(run["image_url"]).content for run in (first, second, third))
    assert a == b
    assert a != c


def test_presigned_url_is_short_lived_and_never_outlives_the_run(api):
    run = wait_for_run(api, submit(api)["run_id"])
    url_expires = datetime.fromisoformat(run["images"][0]["url_expires_at"])
    assert url_expires <= datetime.fromisoformat(run["expires_at"])
    assert (url_expires - datetime.fromisoformat(run["completed_at"])).total_seconds() <= 900 + 5
    amz_expires = int(httpx.URL(run["image_url"]).params["X-Amz-Expires"])
    assert 0 < amz_expires <= 900


def test_image_objects_need_a_signature(api, stack):
    run = wait_for_run(api, submit(api)["run_id"])
    unsigned = run["image_url"].split("?")[0]
    assert httpx.get(unsigned).status_code == 403


def test_bucket_has_the_one_day_lifecycle_rule(stack, api):
    wait_for_run(api, submit(api)["run_id"])
    rules = stack.s3().get_bucket_lifecycle_configuration(Bucket=stack.env["RENDERQ_S3_BUCKET"])["Rules"]
    assert any(rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == 1 for rule in rules)


def test_run_record_expires_with_the_run(api, stack):
    run = submit(api)
    client = redis.Redis.from_url(stack.env["RENDERQ_REDIS_URL"])
    ttl = client.ttl(f"renderq:run:{run['run_id']}")
    assert 24 * 3600 - 60 < ttl <= 24 * 3600 + 1


def test_model_that_fails_to_load_ends_failed_with_a_problem_document(api):
    # Listed in the catalog (so accepted at submit) but its files do not exist.
    run = wait_for_run(api, submit(api, model_id="broken-model")["run_id"])
    assert run["status"] == "failed"
    error = run["error"]
    assert error["type"] == "/problems/model-unavailable"
    assert error["title"] and error["status"] == 422 and "broken-model" in error["detail"]


def test_worker_keeps_serving_after_a_failed_run(api):
    wait_for_run(api, submit(api, model_id="broken-model")["run_id"])
    assert wait_for_run(api, submit(api)["run_id"])["status"] == "completed"


def test_readyz_reports_redis_and_storage(api):
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"redis": "ok", "storage": "ok"}
