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
        "overhead": {"jobs": 3, "summary": {k: {"median": 0.007, "p90": 0.02} for k in (
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


# Issue 12's sections: their figures from synthetic measurements, and the report's rows and
# sections from a results dict (no stack, no process).

from bench.__main__ import FULL, QUICK, SECTIONS
from bench.api_keys import keys_figures
from bench.api_load import wrk_argv
from bench.batching import BATCH, MIXED_SHAPES, backlog_figures, bracketed, drain_figures, mixed_jobs
from bench.identical import pixel_difference
from bench.render_cpu import cpu_figures
from bench.report import client_png_extra, overhead_rows
from bench.report_batching import batching_rows, batching_sections, calls_text, identical_explanation
from bench.report_format import at_least, at_most, fmt, mark, ratio_text, rounds_text, signed_ms
from bench.results_store import code_text, earlier_sections, merge

TINY = {"width": 64, "height": 64, "num_inference_steps": 2}


def _bare(images_per_second: float, images: int = 16) -> dict:
    seconds = images / images_per_second
    return {"images": images, "seconds": seconds, "cpu_seconds": seconds * 0.9,
            "images_per_second": images_per_second, "images_per_cpu_second": images_per_second / 0.9}


def _drain(images_per_second: float, batch: int = 8, jobs: int = 16) -> dict:
    runs = [{"status": "completed", "started_at": 100.0, "completed_at": 100.0 + (i + 1) / images_per_second,
             "timings": {"batch_size": batch, "inference_seconds": 0.1}} for i in range(jobs)]
    cpu = [(99.9, 5.0), (100.0 + 1 / images_per_second, 5.1), (100.0 + jobs / images_per_second + 0.01, 5.1 + jobs * 0.02)]
    return drain_figures([TINY] * jobs, runs, cpu)


def _wrk_run(requests: int, cpu_seconds: float = 1.0) -> dict:
    return {"requests": requests, "duration_us": 1e6, "api_cpu_seconds": cpu_seconds, "p50_ms": 2.0, "p99_ms": 9.0,
            "non_2xx": 0, "socket_errors": 0}


def _compared(largest: int, images: int = 0) -> dict:
    return {"largest": largest, "images_differing": images, "values_differing": images * 2, "values": 196608, "images": 16}


def _issue12_results() -> dict:
    backlog = backlog_figures({"one": [_bare(20), _bare(20)], "eight": [_bare(60), _bare(60)],
                               "batched": [_drain(55)], "unbatched": [_drain(18, batch=1)]}, 16)
    cpu = cpu_figures([{"images": 10, "seconds": 1, "render_cpu_seconds": 0.33, "parent_cpu_seconds": 0.05,
                        "inference_median": 0.03, "end_to_end_median": 0.05}], [_bare(30, 10), _bare(30, 10)])
    keys = keys_figures({"off": {e: [_wrk_run(1000)] for e in ("submit", "status_completed", "status_queued")},
                         "on": {e: [_wrk_run(800)] for e in ("submit", "status_completed", "status_queued")}}, 8, 3)
    mixed = {"jobs": 16, "rounds": 1, "bare_jobs": 8, "shapes": ["64×64 at 2 steps", "128×128 at 4 steps"],
             "service": {"images_per_second": 30.0, "images_per_cpu_second": 40.0, "drains": [_drain(30)]},
             "bare": {"images_per_second": 20.0, "images_per_cpu_second": 25.0}, "ratio": 1.5, "round_ratios": [1.5]}
    identical = {"jobs": 16, "batch_sizes": [8] * 16, "bare_per_call": 8, "service_vs_alone": _compared(1, 3),
                 "together_vs_alone": _compared(1, 3), "service_vs_together": _compared(0)}
    return {"backlog": backlog, "mixed": mixed, "cpu": cpu, "keys": keys, "identical": identical}


def test_targets_are_checked_in_their_direction_and_a_missing_figure_is_no_verdict():
    assert at_least(2.5, 2.5) is True and at_least(2.49, 2.5) is False and at_least(float("nan"), 2.5) is None
    assert at_most(1.15, 1.15) is True and at_most(1.2, 1.15) is False and at_most(None, 1.15) is None
    assert mark(None) == "–" and mark(True) == "✅ met" and mark(False) == "❌ missed"
    assert fmt(float("nan"), " ms") == "–" and fmt(1234.5, "/s", 0) == "1,234/s"
    assert ratio_text(2.6123, 52.3, 20.0, " img/s") == "2.61× (52.3 img/s vs 20.0 img/s)"
    assert signed_ms(0.0079) == "+7.9 ms" and signed_ms(-0.0021) == "−2.1 ms" and signed_ms(None) == "–"
    assert rounds_text(1.33, [1.31, 1.35], 43.4, 29.0, " img/s") == "1.33× (rounds 1.31×, 1.35×; 43.4 vs 29.0 img/s pooled)"


def test_drain_counts_runs_per_model_call_and_cpu_from_the_first_completion():
    d = _drain(50, batch=8, jobs=16)
    assert d["images_per_second"] == pytest.approx(50)
    assert d["model_calls"] == 2 and d["mean_batch"] == pytest.approx(8) and d["batch_sizes"] == {"8": 16}
    # CPU from the sample after the first completion (5.1) to the one after the last (5.42): 15 images.
    assert d["images_per_cpu_second"] == pytest.approx(15 / 0.32)
    assert d["mean_batch_by_shape"] == {"64×64 at 2 steps": pytest.approx(8)}
    failed = [{"status": "failed", "started_at": 1.0, "completed_at": 2.0, "timings": {}}]
    with pytest.raises(RuntimeError):
        drain_figures([TINY], failed, [(1.0, 0.0)])


def test_backlog_ratios_are_taken_round_by_round_against_the_bare_runs_either_side():
    figures = backlog_figures({"one": [_bare(20), _bare(30), _bare(10)], "eight": [_bare(60), _bare(60), _bare(60)],
                               "batched": [_drain(50), _drain(40)], "unbatched": [_drain(20, batch=1), _drain(20, batch=1)]}, 16)
    assert figures["bare_one"]["images_per_second"] == pytest.approx(48 / (16 / 20 + 16 / 30 + 16 / 10))
    assert figures["round_ratios"]["batched_vs_one"] == [pytest.approx(50 / 25), pytest.approx(40 / 20)]
    assert figures["ratios"]["batched_vs_one"] == pytest.approx(2.0)
    assert figures["ratios"]["batched_vs_eight"] == pytest.approx((50 / 60 + 40 / 60) / 2)
    assert figures["ratios"]["batched_vs_unbatched"] == pytest.approx((50 / 20 + 40 / 20) / 2)
    assert figures["unbatched"]["mean_batch"] == pytest.approx(1)
    assert bracketed([{"images_per_second": 10}], [{"images_per_second": 4}, {"images_per_second": 6}]) == [2]


def test_mixed_jobs_cycle_through_the_shapes_with_their_own_seeds():
    jobs = mixed_jobs(8)
    assert [(j["width"], j["num_inference_steps"]) for j in jobs] == list(MIXED_SHAPES) * 2
    assert len({j["seed"] for j in jobs}) == 8 and all(j["width"] == j["height"] for j in jobs)


def test_issue12_rows_carry_their_targets_and_verdicts():
    rows = {what: (target, measured, ok) for what, target, measured, ok in batching_rows(_issue12_results())}
    by_target = {target: (measured, ok) for target, measured, ok in rows.values() if target != "–"}
    assert by_target["≥ 2.5×"] == ("2.75× (rounds 2.75×; 55.0 vs 20.0 img/s pooled)", True)
    assert by_target["≥ 0.8×"] == ("0.92× (rounds 0.92×; 55.0 vs 60.0 img/s pooled)", True)
    assert by_target["≥ 1.8×"] == ("1.50× (rounds 1.50×; 30.0 vs 20.0 img/s pooled)", False)
    assert by_target["≤ 1.15×"] == ("1.10× (33.0 ms vs 30.0 ms)", True)
    assert by_target["≤ 1 (0 ideal)"] == ("1 (3 of 16 images differ; bare 8 per call vs alone: 1)", True)
    assert by_target["≥ 1,000/s, p99 ≤ 50 ms"] == ("800/s, 9.0 ms (off: 1,000/s, ×0.80)", False)
    assert any("a key's API CPU" in what and measured.endswith("250 µs") for what, (_, measured, _) in rows.items())


def test_render_cpu_ratio_is_render_process_over_bare_per_image():
    c = _issue12_results()["cpu"]
    assert c["bare_cpu_ms"] == pytest.approx(30.0) and c["render_cpu_ms"] == pytest.approx(33.0)
    assert c["ratio"] == pytest.approx(1.1) and c["with_parent_ratio"] == pytest.approx(38 / 30)
    [row] = [r for r in batching_rows({"cpu": c}) if r[1] == "≤ 1.15×"]
    assert row[2] == "1.10× (33.0 ms vs 30.0 ms)" and row[3] is True


def test_issue12_sections_render_from_a_results_dict():
    text = "\n".join(batching_sections(_issue12_results()))
    for heading in ("## 7. Micro-batching", "## 8. A mixed backlog", "## 9. Render-process CPU", "## 10. Batched images", "## 11. The API with API keys on"):
        assert heading in text
    assert "16 runs in calls of 8" in text and "| **worker, batching on (≤ 8)** | 55.0 | 2.75× | 0.92× |" in text
    assert "the difference comes from rendering in one call" in text
    assert batching_sections({}) == [] and batching_rows({}) == []


def test_identical_explanation_follows_the_figures():
    same = {"service_vs_alone": _compared(0), "together_vs_alone": _compared(0), "service_vs_together": _compared(0)}
    assert "to the last bit" in identical_explanation(same)
    service_only = {"service_vs_alone": _compared(2, 1), "together_vs_alone": _compared(0), "service_vs_together": _compared(2, 1)}
    assert "not the model call alone" in identical_explanation(service_only)
    assert calls_text({"8": 296, "4": 4}) == "296 runs in calls of 8, 4 runs in calls of 4"


def test_pixel_difference_is_the_largest_channel_difference_and_the_count():
    from PIL import Image

    a = Image.new("RGB", (4, 4), (10, 20, 30))
    b = a.copy()
    b.putpixel((1, 1), (11, 20, 27))
    assert pixel_difference(a, a) == (0, 0)
    assert pixel_difference(a, b) == (3, 2)


def test_overhead_rows_hold_issue_12s_targets():
    summary = {k: {"median": 0.007, "p90": 0.012} for k in ("overhead", "client_overhead")}
    results = {"bare": {"median": 0.030}, "overhead": {"summary": summary, "client_png": {"median": 0.0415, "p90": 0.05}}}
    rows = {what: (target, measured, ok) for what, target, measured, ok in overhead_rows(results)}
    assert rows["Per-job overhead, median (run timestamps)"] == ("≤ 8 ms", "7.0 ms", True)
    assert client_png_extra(results) == pytest.approx(0.0115)
    [png] = [v for what, v in rows.items() if "PNG bytes" in what]
    assert png == ("≤ +10 ms", "+11.5 ms (41.5 ms vs 30.0 ms)", False)
    del results["overhead"]["client_png"]
    assert client_png_extra(results) is None and len(overhead_rows(results)) == 3


def test_keys_cost_is_the_difference_in_api_cpu_per_request():
    cost = _issue12_results()["keys"]["cost"]["submit"]
    assert cost["wall_ratio"] == pytest.approx(0.8) and cost["cpu_us_per_request"] == pytest.approx(250)
    keys = keys_figures({"off": {e: [_wrk_run(1000)] for e in ("submit", "status_completed", "status_queued")},
                         "on": {e: [_wrk_run(800) | ({"active_runs_after": 2400} if e == "submit" else {})]
                                for e in ("submit", "status_completed", "status_queued")}}, 8, 3)
    assert keys["on"]["submit"]["active_runs_after"] == [2400]
    assert "with 2,400 runs queued" in "\n".join(batching_sections({"keys": keys}))
    argv = wrk_argv("http://x/v1", "s.lua", 3, 8, {"Authorization": "Bearer rq_k"})
    assert argv[-3:] == ["-H", "Authorization: Bearer rq_k", "http://x/v1"]
    assert "-H" not in wrk_argv("http://x/v1", "s.lua", 3, 8)


def test_a_partial_run_merges_into_the_last_results():
    previous = {"started": "then", "quick": False, "seconds": 250, "bare": {"median": 1}, "drain": {"x": 1},
                "bare_before_drain": {}, "bare_after": {}, "api": {"old": 1}, "overhead": {"old": 1}}
    current = {"started": "now", "quick": False, "seconds": 90, "bare": {"median": 2}, "overhead": {"new": 1}, "backlog": {"b": 1}}
    merged = merge(previous, current, ["bare", "overhead", "backlog"])
    assert merged["drain"] == {"x": 1} and merged["api"] == {"old": 1}
    assert merged["overhead"] == {"new": 1} and merged["bare"] == {"median": 2} and merged["backlog"] == {"b": 1}
    assert merged["started"] == "now" and merged["seconds"] == 90
    assert earlier_sections(merged) == {"then, full sizes": ["drain", "api"]}
    assert earlier_sections(merge({}, current, ["bare", "overhead", "backlog"])) == {}
    assert code_text({"commit": "abc1234", "changed": []}) == "commit abc1234"
    assert code_text({"commit": "abc1234", "changed": ["worker/render.py"]}) == "commit abc1234 with uncommitted changes to `worker/render.py`"


def test_issue12_sections_can_be_chosen_and_quick_sizes_stay_small():
    assert {"backlog", "mixed", "cpu", "identical", "keys"} <= set(SECTIONS)
    for sizes in (FULL, QUICK):
        assert sizes.backlog_bare_jobs % BATCH == 0 and sizes.identical_jobs % BATCH == 0
        assert sizes.mixed_bare_jobs % len(MIXED_SHAPES) == 0
    assert FULL.backlog_jobs == 300
    assert QUICK.backlog_jobs * QUICK.backlog_rounds <= 100 and QUICK.keys_seconds * QUICK.keys_rounds <= 5


def test_profile_classifies_the_render_process_threads():
    from bench.profile_drain import classify

    raw = "\n".join([
        "<module> (renderq:6);workloop (billiard/pool.py:369);fast_trace_task (celery/app/trace.py:798);"
        "render_run (worker/tasks.py:44);render_images (worker/render.py:141);_call (pipelines/diffusion.py:60) 60",
        "<module> (renderq:6);workloop (billiard/pool.py:369);fast_trace_task (celery/app/trace.py:798);"
        "render_run (worker/tasks.py:44);claim_group (storage/runs.py:180) 10",
        "<module> (renderq:6);workloop (billiard/pool.py:369);recv (billiard/connection.py:1) 30",
        "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);_work (worker/render.py:112);"
        "store_images (worker/render.py:160);S3ImageStore.put (storage/images.py:80);send (socket.py:1) 25",
        "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);_beat (worker/heartbeat.py:22);Event.wait (threading.py:629) 99",
    ])
    main, others, total = classify(raw)
    assert total == 100
    assert main["model call (pipelines/diffusion.py)"] == 60 and main["waiting for the next task from the Celery parent"] == 30
    assert others == {"S3ImageStore.put → send": 25}


def test_the_previews_row_and_section_render_from_a_results_dict():
    from bench.report_previews import previews_rows, previews_section

    previews = {"job": {"width": 256, "height": 256, "num_inference_steps": 20}, "every": 5, "on": [1.03] * 4,
                "off": [1.0] * 4, "median_on": 1.03, "median_off": 1.0, "ratio": 1.03, "paired_ratio": 1.02,
                "previews_per_render": 3, "parts_ms": {"decode": 1.5, "encode": 1.3, "publish": 0.4, "jpeg_bytes": 12000, "side": 256}}
    row, cpu_row = previews_rows({"previews": previews})
    assert cpu_row[3] is None  # no CPU figure: no verdict
    assert row[1] == "≤ 1.05×" and row[2].startswith("1.020× (medians 1,030 ms vs 1,000 ms: ×1.030)") and row[3] is True
    assert previews_rows({"previews": previews | {"paired_ratio": 1.2}})[0][3] is False
    text = "\n".join(previews_section({"previews": previews}))
    assert "## 13. What live previews cost a render" in text and "9.6 ms a render" in text and "| ×– |" in text and "1.03× to 1.03×" in text
    assert previews_rows({}) == [] and previews_section({}) == [] and "previews" in SECTIONS and QUICK.previews_rounds < FULL.previews_rounds
