"""What renders take, as the workers measure it, for queue estimates.

Per image size, the seconds one denoising step of one image takes (an exponential moving
average per "WxH" in `renderq:stats:step_seconds`), and the seconds a run spends outside the
denoising loop and model loading (`renderq:stats:overhead_seconds`: PNG encoding, upload). A
per-size rate matters: at small sizes a step costs about the same whatever the pixel count, so
one rate per megapixel learned from 64 px tests would be ten times off for 512 px renders. A size
never rendered yet is scaled from the nearest measured one by pixel count, or falls back to the
global per-unit rate (storage/runs.py `record_render_rate`).

Each worker pool has its own averages (its models render at their own speed): the default pool
keeps the names above, pool NAME has `…:step_seconds:NAME` and `…:overhead_seconds:NAME`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from .redis_ops import Batch, Op, run

STEP_SECONDS = "renderq:stats:step_seconds"
OVERHEAD_SECONDS = "renderq:stats:overhead_seconds"
WEIGHT = 0.2


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


@dataclass
class RenderStats:
    step_seconds: dict[str, float] = field(default_factory=dict)
    overhead: float = 0.0
    seconds_per_unit: float = 1.0  # fallback: seconds per (step × image × megapixel)

    def seconds_per_step(self, request: dict[str, Any]) -> float:
        key = size_key(request)
        if key in self.step_seconds:
            return self.step_seconds[key]
        pixels = _side(request, "width") * _side(request, "height")
        if self.step_seconds:
            def area(k: str) -> int:
                w, h = k.split("x")
                return int(w) * int(h)

            nearest = min(self.step_seconds, key=lambda k: abs(area(k) - pixels))
            return self.step_seconds[nearest] * pixels / area(nearest)
        return self.seconds_per_unit * pixels / 1e6

    def run_seconds(self, request: dict[str, Any], progress: int = 0) -> float:
        """Seconds still to go for a run of `request` at `progress`, overhead included."""
        return step_images(request) * self.seconds_per_step(request) * (1 - progress / 100) + self.overhead


def _ema(current: str | None, value: float) -> float:
    return value if current is None else (1 - WEIGHT) * float(current) + WEIGHT * value


def record_render(client: redis.Redis, request: dict[str, Any], timings: dict[str, float], pool: str | None = None) -> None:
    """Fold one completed render's timings into its pool's averages."""
    if "inference_seconds" not in timings:
        return
    key = size_key(request)
    step_seconds, overhead_seconds = pool_key(STEP_SECONDS, pool), pool_key(OVERHEAD_SECONDS, pool)
    # A batched run's inference_seconds is its whole model call's: its share is 1/batch_size.
    per_step = timings["inference_seconds"] / max(timings.get("batch_size", 1), 1) / max(step_images(request), 1)
    step_now, overhead_now = client.pipeline(transaction=False).hget(step_seconds, key).get(overhead_seconds).execute()
    with client.pipeline(transaction=False) as pipe:  # read, then written: two round trips in all
        pipe.hset(step_seconds, key, _ema(step_now, per_step))
        if "total_seconds" in timings:
            overhead = max(timings["total_seconds"] - timings["inference_seconds"] - timings.get("load_seconds", 0.0), 0.0)
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
        if rate_key is not None:
            pipe.get(rate_key)

    steps, overhead, *rate = yield Batch(fill)
    return RenderStats(
        step_seconds={k: float(v) for k, v in steps.items()},
        overhead=float(overhead) if overhead else 0.0,
        seconds_per_unit=float(rate[0]) if rate and rate[0] is not None else seconds_per_unit,
    )
