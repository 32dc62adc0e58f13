"""The arithmetic of `estimated_time` (storage/render_stats.py, api/run_views.py, api/estimates.py):
a model call's seconds fitted as a fixed part plus a part per denoising step actually run, per
operation and size, from what workers record; fakeredis, no processes. The accuracy itself is
measured on the real stack by `python -m bench --only estimates` (BENCHMARKS.md)."""

from __future__ import annotations

import fakeredis
import pytest

from api.estimates import EstimateInputs
from api.run_views import estimate_seconds
from storage.records import RunRecord
from storage.redis_ops import run
from storage.render_stats import Fit, load_stats, record_render, work_units
from storage.runs import RunStore


@pytest.fixture
def redis():
    return fakeredis.FakeRedis(decode_responses=True)


def _render(redis, request, seconds, operation=None, total=None):
    timings = {"inference_seconds": seconds, "total_seconds": total if total is not None else seconds + 0.01}
    record_render(redis, request, timings, operation=operation)


def test_a_fixed_part_and_a_part_per_step_are_fitted_from_renders_of_several_lengths(redis):
    t2i = {"width": 64, "height": 64, "num_images": 1}
    for _ in range(10):  # 20 ms a call (prompt encoding, decoding) + 10 ms a step
        _render(redis, t2i | {"num_inference_steps": 2}, 0.04)
        _render(redis, t2i | {"num_inference_steps": 8}, 0.10)
    stats = load_stats(redis, 1.0)
    assert stats.overhead == pytest.approx(0.01)
    assert stats.call_seconds(t2i | {"num_inference_steps": 4}) == pytest.approx(0.06, rel=0.02)
    assert stats.run_seconds(t2i | {"num_inference_steps": 8}) == pytest.approx(0.11, rel=0.02)
    # Half done: half of the call is left, and the overhead.
    assert stats.run_seconds(t2i | {"num_inference_steps": 8}, progress=50) == pytest.approx(0.05 + 0.01, rel=0.02)
    # Per step alone (what estimates used before) would time 8 steps from a 2-step render at 0.16 s.
    assert Fit.first(2, 0.04).seconds(8) == pytest.approx(0.16)


def test_operations_are_timed_apart_and_an_image_operation_by_its_input(redis):
    t2i = {"width": 64, "height": 64, "num_inference_steps": 4, "num_images": 1}
    _render(redis, t2i, 0.08)
    _render(redis, {"upscale_factor": 2}, 0.5, operation="upscale")  # sized by its input: no width
    stats = load_stats(redis, 1.0)
    assert set(stats.fits) == {"64x64", "upscale:input"}
    assert stats.call_seconds(t2i) == pytest.approx(0.08)
    assert stats.call_seconds({"upscale_factor": 3}, "upscale") == pytest.approx(0.5)
    assert stats.call_seconds({"upscale_factor": 3} | {"operation": "upscale"}) == pytest.approx(0.5)  # a queued shape
    # An operation never measured falls back to the per-step table; a size never measured is
    # scaled from the nearest one of its operation by pixel count.
    assert stats.call_seconds({"num_inference_steps": 4, "width": 64, "height": 64}, "inpaint") == pytest.approx(0.08)
    assert stats.call_seconds(t2i | {"width": 128}) == pytest.approx(0.16)


def test_image_to_image_runs_strength_times_its_steps(redis):
    assert work_units({"num_inference_steps": 8, "strength": 0.5, "num_images": 2}) == 8
    assert work_units({"num_inference_steps": 8, "strength": 1.0}) == 8
    assert work_units({"num_inference_steps": 3, "strength": 0.1}) == 1  # at least one step
    _render(redis, {"num_inference_steps": 8, "strength": 0.5}, 0.4, operation="image-to-image")
    stats = load_stats(redis, 1.0)
    assert stats.call_seconds({"num_inference_steps": 8, "strength": 1.0}, "image-to-image") == pytest.approx(0.8)


def test_a_queued_run_waits_for_the_work_ahead_shared_by_the_workers(redis):
    _render(redis, {"width": 64, "height": 64, "num_inference_steps": 2}, 0.2, total=0.25)
    stats = load_stats(redis, 1.0)
    record = RunRecord(run_id="gen_e1", request={"width": 64, "height": 64, "num_inference_steps": 2})
    assert estimate_seconds(record, stats) == pytest.approx(0.25)
    assert estimate_seconds(record, stats, seconds_ahead=1.0, workers=2) == pytest.approx(0.75)


def test_what_the_workers_hold_is_reread_after_a_quarter_of_a_typical_run(redis, monkeypatch):
    runs = RunStore(redis, 3600)
    inputs = EstimateInputs(runs, 1.0, ttl=1.0)
    _render(redis, {"width": 64, "height": 64, "num_inference_steps": 2}, 0.2, total=0.2)
    stats = load_stats(redis, 1.0)
    assert stats.typical_seconds() == pytest.approx(0.2)
    clock = [100.0]
    monkeypatch.setattr("api.estimates.time.monotonic", lambda: clock[0])
    reads = []

    def read(self, stats, pool, leaving_out=None):
        reads.append(pool)

    monkeypatch.setattr(EstimateInputs, "_read_running", read)
    inputs._running["default"] = (100.0, 0.0, 1)
    clock[0] = 100.04  # within 50 ms (a quarter of 0.2 s): the cached view
    assert run(redis, inputs.running(stats)) == (0.0, 1) and reads == []
    clock[0] = 100.06
    inputs.running(stats)
    assert reads == ["default"]


def test_a_run_that_loaded_its_model_is_left_out_of_the_fit(redis):
    request = {"width": 64, "height": 64, "num_inference_steps": 4}
    _render(redis, request, 0.08)
    record_render(redis, request, {"inference_seconds": 0.9, "load_seconds": 3.0, "total_seconds": 4.0})  # loaded, cold
    assert load_stats(redis, 1.0).call_seconds(request) == pytest.approx(0.08)
    record_render(redis, request, {"inference_seconds": 0.18, "load_seconds": 0.001, "total_seconds": 0.19})
    assert load_stats(redis, 1.0).call_seconds(request) == pytest.approx(0.8 * 0.08 + 0.2 * 0.18)


def test_a_submits_estimate_reads_what_workers_hold_now_less_the_run_itself(redis):
    runs = RunStore(redis, 3600)
    inputs = EstimateInputs(runs, 1.0)
    request = {"width": 64, "height": 64, "num_inference_steps": 4}
    _render(redis, request, 0.4, total=0.5)
    stats = load_stats(redis, 1.0)
    assert run(redis, inputs.running(stats)) == (0.0, 1)  # nothing held: cached now
    for run_id in ("gen_held", "gen_new"):
        runs.create(RunRecord(run_id=run_id, request=request, operation="text-to-image"))
        assert runs.claim(run_id, 1, "w1", 60) == "claimed"
    assert run(redis, inputs.running(stats)) == (0.0, 1)  # the cached view, a moment old
    # A submit's answer reads now; the run it answers for, claimed meanwhile, is not ahead of itself.
    assert run(redis, inputs.running(stats, fresh_for="gen_new")) == (pytest.approx(0.4), 1)
