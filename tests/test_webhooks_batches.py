"""Webhooks (signed, retried, through their own Celery worker), batches, and the renderq CLI,
against a private stack: a render worker, a webhook worker, the API, and a receiver on loopback."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image
from standardwebhooks import Webhook

from client.client import parse_sse
from storage.credits import CreditStore
from tests.conftest import make_stack, wait_for_run
from devkit.procs import Proc, free_port, renderq_command, wait_until

SECRET = "whsec_" + "dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NQ=="
FINAL = ("completed", "failed", "canceled", "expired")


class Receiver:
    """A webhook endpoint on loopback that verifies every signature. It answers `fail_first`
    to the first delivery of each webhook-id (then 200), or `always` to every one."""

    def __init__(self, port: int, fail_first: int | None = None, always: int | None = None) -> None:
        self.received: list[dict] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(SECRET).verify(body, headers)
                except Exception:
                    receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                seen = [r for r in receiver.received if r["id"] == headers["webhook-id"]]
                receiver.received.append({"id": headers["webhook-id"], "body": body, "payload": payload})
                code = always or (fail_first if fail_first and not seen else 200)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, event_type: str) -> list[dict]:
        return [r for r in self.received if r["payload"]["type"] == event_type]


@pytest.fixture(scope="module")
def hooked(tmp_path_factory, tiny_model, redis_url, s3_endpoint):
    stack = make_stack(
        tmp_path_factory, tiny_model, redis_url, s3_endpoint,
        RENDERQ_WEBHOOK_SECRET=SECRET,
        RENDERQ_WEBHOOK_ALLOW_PRIVATE="true",
        RENDERQ_WEBHOOK_RETRY_SCHEDULE="[0, 0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 1]",
        RENDERQ_WEBHOOK_TIMEOUT="2",
        RENDERQ_PROGRESS_MIN_INTERVAL="0.5",
        RENDERQ_PREVIEW_EVERY_STEPS="2",
    )
    try:
        stack.worker("render")
        hooks = Proc(renderq_command("worker", "--queues=renderq.webhooks", "--hostname=hooks@%h"), stack.workdir / "worker-hooks.log", env=stack.env)
        stack.procs.append(hooks)
        wait_until(lambda: " ready." in hooks.log(), 60, interval=0.2, what="webhook worker")
        stack.api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(hooked):
    with hooked.client() as client:
        yield client


def small(seed: int = 1, **fields) -> dict:
    return {"prompt": f"a paper boat {seed}", "width": 64, "height": 64, "num_inference_steps": 1, "seed": seed} | fields


def test_receiver_down_for_the_first_attempts_still_gets_signed_deliveries(client):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/renderq"
    run = client.post("/v1/generations", json=small(webhook_url=url)).json()
    assert run["webhook"]["url"] == url and run["webhook"]["attempts"] == 0
    # Nothing listens on the port: attempts fail with no answer, the run goes on regardless.
    wait_until(lambda: client.get(f"/v1/generations/{run['run_id']}").json()["webhook"]["attempts"] >= 3, 30, what="failed attempts")
    down = wait_for_run(client, run["run_id"], statuses=FINAL)
    assert down["status"] == "completed" and down["webhook"]["last_status_code"] == 0
    receiver = Receiver(port, fail_first=503)
    try:
        wait_until(lambda: len(receiver.delivered("run.completed")) >= 2 and len(receiver.delivered("run.started")) >= 2, 30, what="deliveries")
        assert receiver.bad_signatures == 0
        for event in ("run.started", "run.completed"):
            got = receiver.delivered(event)
            assert len({r["id"] for r in got}) == 1, "every retry carries the same webhook-id"
            assert len({r["body"] for r in got}) == 1, "and the same body"
            assert got[0]["payload"]["data"]["run_id"] == run["run_id"]
        assert receiver.delivered("run.completed")[0]["payload"]["data"]["status"] == "completed"
        final = wait_until(lambda: (v := client.get(f"/v1/generations/{run['run_id']}").json())["webhook"]["last_status_code"] == 200 and v, 10, what="200 recorded")
        assert final["status"] == "completed" and final["webhook"]["attempts"] >= 7
    finally:
        receiver.stop()


def test_410_stops_retries_and_the_event_filter_is_honoured(client):
    port = free_port()
    receiver = Receiver(port, always=410)
    try:
        run = client.post("/v1/generations", json=small(webhook_url=f"http://127.0.0.1:{port}/", webhook_events=["completed"])).json()
        wait_for_run(client, run["run_id"])
        wait_until(lambda: receiver.received, 15, what="first delivery")
        time.sleep(2.5)  # several retry intervals of the test schedule
        assert len(receiver.received) == 1 and receiver.received[0]["payload"]["type"] == "run.completed"
        view = client.get(f"/v1/generations/{run['run_id']}").json()
        assert view["webhook"] == {"url": f"http://127.0.0.1:{port}/", "events": ["completed"], "attempts": 1, "last_status_code": 410}
    finally:
        receiver.stop()


def test_run_preview_webhooks_go_only_to_callers_who_ask_for_them(client):
    port = free_port()
    receiver = Receiver(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        asked = client.post("/v1/generations", json=small(21, webhook_url=url, webhook_events=["preview", "completed"],
                                                          num_inference_steps=8)).json()
        default = client.post("/v1/generations", json=small(22, webhook_url=url, num_inference_steps=8)).json()
        for run in (asked, default):
            wait_for_run(client, run["run_id"])
        wait_until(lambda: len(receiver.delivered("run.completed")) >= 2, 15, what="completion webhooks")
    finally:
        receiver.stop()
    previews = [r["payload"]["data"] for r in receiver.delivered("run.preview")]
    assert previews and {p["run_id"] for p in previews} == {asked["run_id"]}, previews
    assert all(p["image"].startswith("data:image/jpeg;base64,") and 0 < p["step"] < 8 for p in previews)
    assert len({p["id"] for p in previews}) == len(previews)  # each preview once (delivery order is not promised)


def test_the_completion_webhook_and_events_carry_the_charge(hooked):
    key = hooked.create_key("hook-credits")
    CreditStore(hooked.redis()).grant("hook-credits", 10_000)
    port = free_port()
    receiver = Receiver(port)
    try:
        with hooked.client(key=key) as client:
            run = client.post("/v1/generations", json=small(7, webhook_url=f"http://127.0.0.1:{port}/", webhook_events=["completed"])).json()
            with httpx.stream("GET", f"{hooked.api_url}/v1/generations/{run['run_id']}/events", timeout=60,
                              headers={"Authorization": f"Bearer {key}"}) as response:
                events = list(parse_sse(response.iter_lines()))
            view = wait_for_run(client, run["run_id"])
        wait_until(lambda: receiver.delivered("run.completed"), 15, what="completion webhook")
    finally:
        receiver.stop()
    charge = {"credits_used": view["credits_used"], "credits_remaining": view["credits_remaining"]}
    assert view["status"] == "completed" and charge["credits_used"] > 0 and charge["credits_remaining"] == round(10 - charge["credits_used"], 3)
    [completed] = [data for kind, data in events if kind == "status" and data["status"] == "completed"]
    assert {k: completed[k] for k in charge} == charge
    assert {k: receiver.delivered("run.completed")[0]["payload"]["data"][k] for k in charge} == charge


def test_batch_is_atomic_and_names_the_bad_item(client):
    def run_ids():
        return [r["run_id"] for r in client.get("/v1/generations", params={"limit": 100}).json()["data"]]

    before = run_ids()
    items = [small(i) for i in range(5)]
    items[3]["width"] = 65
    response = client.post("/v1/batches", json=items)
    assert response.status_code == 422
    problem = response.json()
    assert problem["index"] == 3 and "item 3" in problem["detail"] and "width" in problem["detail"]
    jsonl = "\n".join(json.dumps(i) for i in [small(1), {"prompt": ""}])
    response = client.post("/v1/batches", content=jsonl, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 422 and response.json()["index"] == 1
    assert run_ids() == before
    too_many = client.post("/v1/batches", json=[small(1)] * 1001)
    assert too_many.status_code == 413


def test_jsonl_upload_batch_progress_pagination_and_batch_webhook(client):
    port = free_port()
    receiver = Receiver(port)
    try:
        jsonl = "\n".join(json.dumps(small(i)) for i in range(5)) + "\n"
        response = client.post(
            "/v1/batches", params={"webhook_url": f"http://127.0.0.1:{port}/batch"},
            files={"file": ("prompts.jsonl", jsonl, "application/x-ndjson")},
        )
        assert response.status_code == 202, response.text
        created = response.json()
        assert created["total"] == 5 and len(created["run_ids"]) == 5
        first = client.get(f"/v1/batches/{created['batch_id']}", params={"limit": 2}).json()
        assert first["total"] == 5 and sum(first["counts"].values()) == 5
        assert [r["run_id"] for r in first["runs"]] == created["run_ids"][:2]
        assert not first["done"] and first["estimated_time"] > 0
        second = client.get(f"/v1/batches/{created['batch_id']}", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [r["run_id"] for r in second["runs"]] == created["run_ids"][2:4]
        listed = client.get("/v1/generations", params={"batch_id": created["batch_id"], "limit": 10}).json()["data"]
        assert sorted(r["run_id"] for r in listed) == sorted(created["run_ids"])
        assert all(r["batch_id"] == created["batch_id"] for r in listed)
        for run_id in created["run_ids"]:
            wait_for_run(client, run_id)
        done = client.get(f"/v1/batches/{created['batch_id']}").json()
        assert done["done"] and done["counts"]["completed"] == 5 and done["progress"] == 100 and done["estimated_time"] is None
        assert done["credits_used"] == done["credits_estimated"] > 0  # each completed run is charged its estimate
        wait_until(lambda: receiver.delivered("batch.completed"), 15, what="batch webhook")
        assert len(receiver.delivered("batch.completed")) == 1
        assert receiver.delivered("batch.completed")[0]["payload"]["data"]["batch_id"] == created["batch_id"]
    finally:
        receiver.stop()


def _cli(hooked, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(renderq_command(*args, "--api", hooked.api_url), env=hooked.env, capture_output=True, text=True, timeout=timeout)


def test_cli_submit_waits_with_a_progress_bar_and_downloads(hooked, tmp_path):
    result = _cli(hooked, "submit", "a lighthouse", "--wait", "--out", str(tmp_path), "--width", "64", "--height", "64", "--steps", "2", "--seed", "5")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed" and len(out["files"]) == 1
    with Image.open(out["files"][0]) as png:
        assert png.size == (64, 64)


def test_cli_batch_of_200_downloads_every_png_and_a_rerun_skips_them(hooked, client, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(small(i, prompt=f"tile {i}")) + "\n" for i in range(200)))
    out = tmp_path / "out"
    result = _cli(hooked, "batch", str(prompts), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["downloaded"] == 200 and summary["failed"] == []
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 200
    assert sorted(entry["index"] for entry in manifest) == list(range(200))
    for entry in manifest:
        assert entry["prompt"] == f"tile {entry['index']}" and entry["seed"] == entry["index"]
        with Image.open(out / entry["file"]) as png:
            assert png.format == "PNG" and png.size == (64, 64)
    assert len(list(out.glob("*.png"))) == 200
    # A rerun finds everything downloaded: it submits nothing and downloads nothing.
    newest = client.get("/v1/generations", params={"limit": 1}).json()["data"][0]["run_id"]
    (out / manifest[0]["file"]).unlink()  # except one file lost since: only that one is redone
    again = _cli(hooked, "batch", str(prompts), "--out", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["downloaded"] == 200
    assert (out / manifest[0]["file"]).exists()
    newer = client.get("/v1/generations", params={"limit": 5}).json()["data"]
    assert newer[0]["run_id"] == newest, "the lost file's run was downloaded again, not re-rendered"
