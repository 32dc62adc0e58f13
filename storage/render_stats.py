"""What renders take, as the workers measure it, for queue estimates.

Per image size, the seconds one denoising step of one image takes (an exponential moving
average per "WxH" in `renderq:stats:step_seconds`), and the seconds a run spends outside the
denoising loop and model loading (`renderq:stats:overhead_seconds`: PNG encoding, upload, and
the pickup of its message once a render process is free: `pickup_seconds`). A
per-size rate matters: at small sizes a step costs about the same whatever the pixel count, so
one rate per megapixel learned from 64 px tests would be ten times off for 512 px renders. A size
never rendered yet is scaled from the nearest measured one by pixel count, or falls back to the
global per-unit rate (storage/runs.py `record_render_rate`).

Each worker pool has its own averages (its models render at their own speed): the default pool
keeps the names above, pool NAME has `…:step_seconds:NAME` and `…:overhead_seconds:NAME`.

What estimates use first (`renderq:stats:render_fit`, per operation and size): a model call's
seconds as a fixed part plus a part per unit of work (denoising steps actually run × images),
fitted by exponentially weighted least squares over the completed renders. Per step alone was
2-3× off: a call also encodes the prompt and decodes the latents once, whatever its steps, so a
rate learned from 2-step renders overestimated 8-step ones and the other way round. Operations
are apart (an upscale is not a text-to-image step); an image operation whose request leaves the
size to its input is keyed `OPERATION:input`. Until one distinct amount of work has been seen
the fit is proportional (per unit of work, as the per-step table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from .redis_ops import Batch, Op, run

STEP_SECONDS = "renderq:stats:step_seconds"
OVERHEAD_SECONDS = "renderq:stats:overhead_seconds"
RENDER_FIT = "renderq:stats:render_fit"
WEIGHT = 0.2
TEXT_TO_IMAGE = "text-to-image"


def pool_key(key: str, pool: str | None) -> str:
    """`key` of `pool`'s averages (the default pool: `key` itself)."""
    return key if not pool or pool == "default" else f"{key}:{pool}"


def _side(request: dict[str, Any], name: str) -> int:
    # Image operations may leave the size to the input image (None): assume 512.
    return int(request.get(name) or 512)


def size_key(request: dict[str, Any]) -> str:
    return f"{_side(request, 'width')}x{_side(request, 'height')}"


def step_images(request: dict[str, Any]) -> int:
    return int(request.get("num_inference_steps") or 1) * int(request.get("num_images") or 1)


def work_units(request: dict[str, Any]) -> float:
    """Denoising steps a render runs × its images: an image-to-image kind of strength s < 1 runs
    s of its steps (diffusers skips the rest)."""
    steps = int(request.get("num_inference_steps") or 1)
    strength = request.get("strength")
    if isinstance(strength, (int, float)) and 0 < strength < 1:
        steps = max(1, int(steps * strength))
    return float(steps * int(request.get("num_images") or 1))


def fit_key(request: dict[str, Any], operation: str | None = None) -> str:
    """Text-to-image: "WxH"; another operation: "OPERATION:WxH", or "OPERATION:input" when its
    request leaves the size to the input image."""
    operation = operation or request.get("operation") or TEXT_TO_IMAGE
    if operation == TEXT_TO_IMAGE:
        return size_key(request)
    sized = request.get("width") and request.get("height")
    return f"{operation}:{size_key(request) if sized else 'input'}"


@dataclass
class Fit:
    """Weighted means of x (units of work), y (model-call seconds), x², x·y."""

    x: float
    y: float
    xx: float
    xy: float

    def seconds(self, units: float, scale: float = 1.0) -> float:
        """Seconds of a call of `units`; `scale`: of the part per unit (another size's call,
        by pixel count: the fixed part, mostly prompt encoding, does not grow with it)."""
        variance = self.xx - self.x * self.x
        if variance > 0.01 * self.x * self.x:  # more than one amount of work seen: fixed + per unit
            slope = (self.xy - self.x * self.y) / variance
            fixed = self.y - slope * self.x
            if slope > 0 and fixed >= 0:
                return fixed + slope * units * scale
        return self.y / max(self.x, 1e-9) * units * scale  # proportional

    def folded(self, units: float, seconds: float) -> "Fit":
        def ema(old: float, new: float) -> float:
            return (1 - WEIGHT) * old + WEIGHT * new

        return Fit(ema(self.x, units), ema(self.y, seconds), ema(self.xx, units * units), ema(self.xy, units * seconds))

    @classmethod
    def first(cls, units: float, seconds: float) -> "Fit":
        return cls(units, seconds, units * units, units * seconds)

    @classmethod
    def parse(cls, raw: str | None) -> "Fit | None":
        return cls(*json.loads(raw)) if raw else None

    def dump(self) -> str:
        return json.dumps([self.x, self.y, self.xx, self.xy])


@dataclass
class RenderStats:
    step_seconds: dict[str, float] = field(default_factory=dict)
    overhead: float = 0.0
    seconds_per_unit: float = 1.0  # fallback: seconds per (step × image × megapixel)
    fits: dict[str, Fit] = field(default_factory=dict)

    def call_seconds(self, request: dict[str, Any], operation: str | None = None) -> float:
        """Seconds the model call of a run of `request` takes: its operation's fit at its size, or
        at the nearest size it has one for (scaled by pixel count), else the per-step tables."""
        key, units = fit_key(request, operation), work_units(request)
        if key in self.fits:
            return self.fits[key].seconds(units)
        prefix = key.rsplit(":", 1)[0] + ":" if ":" in key else ""
        sized = [k for k in self.fits if (k.startswith(prefix) if prefix else ":" not in k) and not k.endswith(":input")]
        if sized and not key.endswith(":input"):
            pixels = _side(request, "width") * _side(request, "height")
            nearest = min(sized, key=lambda k: abs(_area(k) - pixels))
            return self.fits[nearest].seconds(units, pixels / _area(nearest))
        same_operation = [k for k in self.fits if k.startswith(prefix)] if prefix else []
        if same_operation:
            return self.fits[same_operation[0]].seconds(units)
        return step_images(request) * self.seconds_per_step(request)

    def seconds_per_step(self, request: dict[str, Any]) -> float:
        key = size_key(request)
        if key in self.step_seconds:
            return self.step_seconds[key]
        pixels = _side(request, "width") * _side(request, "height")
        if self.step_seconds:
            nearest = min(self.step_seconds, key=lambda k: abs(_area(k) - pixels))
            return self.step_seconds[nearest] * pixels / _area(nearest)
        return self.seconds_per_unit * pixels / 1e6

    def typical_seconds(self) -> float | None:
        """A typical run's seconds (the median of the fits' mean model call, plus the overhead);
        None before any render was measured."""
        calls = sorted(fit.y for fit in self.fits.values())
        return calls[len(calls) // 2] + self.overhead if calls else None

    def run_seconds(self, request: dict[str, Any], progress: int = 0, operation: str | None = None) -> float:
        """Seconds still to go for a run of `request` (of `operation`; else the request's
        "operation", else text-to-image) at `progress`, overhead included."""
        return self.call_seconds(request, operation) * (1 - progress / 100) + self.overhead


def _area(key: str) -> int:
    w, h = key.rsplit(":", 1)[-1].split("x")
    return int(w) * int(h)


def _ema(current: str | None, value: float) -> float:
    return value if current is None else (1 - WEIGHT) * float(current) + WEIGHT * value


def record_render(client: redis.Redis, request: dict[str, Any], timings: dict[str, float], pool: str | None = None,
                  operation: str | None = None) -> None:
    """Fold one completed render's timings into its pool's averages."""
    if "inference_seconds" not in timings:
        return
    key, fit = size_key(request), fit_key(request, operation)
    step_seconds, overhead_seconds, fits = (pool_key(name, pool) for name in (STEP_SECONDS, OVERHEAD_SECONDS, RENDER_FIT))
    # A batched run's inference_seconds is its whole model call's: its share is 1/batch_size.
    seconds = timings["inference_seconds"] / max(timings.get("batch_size", 1), 1)
    per_step = seconds / max(step_images(request), 1)
    step_now, overhead_now, fit_now = (
        client.pipeline(transaction=False).hget(step_seconds, key).get(overhead_seconds).hget(fits, fit).execute())
    known, units = Fit.parse(fit_now), work_units(request)
    with client.pipeline(transaction=False) as pipe:  # read, then written: two round trips in all
        if fit == key:  # the per-step table (and /metrics' renderq_step_seconds) is text-to-image's
            pipe.hset(step_seconds, key, _ema(step_now, per_step))
        # A run that loaded its model (longer than its call) is left out of the fit: a freshly
        # loaded model's first call warms it up and is slower than the ones after it.
        if known is None or timings.get("load_seconds", 0.0) <= timings["inference_seconds"]:
            pipe.hset(fits, fit, (known.folded(units, seconds) if known else Fit.first(units, seconds)).dump())
        if "total_seconds" in timings:
            # Besides the model call, a run takes its storing and the pickup of its message.
            overhead = max(timings["total_seconds"] - timings["inference_seconds"] - timings.get("load_seconds", 0.0), 0.0)
            overhead += timings.get("pickup_seconds", 0.0)
            pipe.set(overhead_seconds, _ema(overhead_now, overhead))
        pipe.execute()


def load_stats(client: redis.Redis, seconds_per_unit: float, pool: str | None = None) -> RenderStats:
    return run(client, stats_op(seconds_per_unit, pool=pool))


def stats_op(seconds_per_unit: float, rate_key: str | None = None, pool: str | None = None) -> Op[RenderStats]:
    """`pool`'s stats in one round trip. With `rate_key`, the per-unit rate stored there (read in
    the same round trip) when there is one, else `seconds_per_unit`."""

    def fill(pipe) -> None:
        pipe.hgetall(pool_key(STEP_SECONDS, pool))
        pipe.get(pool_key(OVERHEAD_SECONDS, pool))
        pipe.hgetall(pool_key(RENDER_FIT, pool))
        if rate_key is not None:
            pipe.get(rate_key)

    steps, overhead, fits, *rate = yield Batch(fill)
    return RenderStats(
        step_seconds={k: float(v) for k, v in steps.items()},
        overhead=float(overhead) if overhead else 0.0,
        seconds_per_unit=float(rate[0]) if rate and rate[0] is not None else seconds_per_unit,
        fits={k: Fit.parse(v) for k, v in fits.items()},
    )
