"""How good `estimated_time` is (issue 13): runs of a mix of sizes and operations (text-to-image,
image-to-image, upscale, remove-background) submitted on the real stack with the tiny catalog,
after a warm-up that renders each kind once; each run's estimate, as its submit answered it,
against what it really took (completed_at − created_at). First one at a time (each submitted
once the one before has ended), then in small queues (QUEUE runs submitted at once, so the later
ones wait behind the earlier ones). The target: 90 % of the estimates within ±50 %.
"""

from __future__ import annotations

import base64
import io
import random

from .stack import PROMPT, Infra, records, wait_drained

QUEUE = 4
TOLERANCE = 0.5  # an estimate within ±50 % of the real time


def _image(side: int, seed: int) -> str:
    from PIL import Image

    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), bytes(rng.randrange(256) for _ in range(side * side * 3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def warm_up() -> list[tuple[str, dict]]:
    """Each operation at each size of the mix (and the diffusion ones at 2 and 8 steps), twice:
    what a deployment has rendered a few times, so its averages exist."""
    jobs: list[tuple[str, dict]] = []
    for i, side in enumerate((64, 96, 128, 64, 96, 128)):
        jobs += [("generations", {"prompt": PROMPT, "width": side, "height": side, "num_inference_steps": steps, "seed": i})
                 for steps in (2, 8)]
        jobs += [("image-to-image", {"prompt": PROMPT, "image": _image(side, i), "num_inference_steps": steps, "seed": i})
                 for steps in (2, 8)]
        jobs += [("upscale", {"image": _image(side // 2, i), "upscale_factor": 2}), ("remove-background", {"image": _image(side, i)})]
    return jobs


def mix(count: int, seed: int = 13) -> list[tuple[str, dict]]:
    """`count` (route, body) pairs: sizes 64-128, 2-8 steps, four operations, in a fixed shuffle."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        side, steps = rng.choice((64, 96, 128)), rng.choice((2, 4, 8))
        kind = ("generations", "image-to-image", "upscale", "remove-background")[i % 4]
        if kind == "generations":
            body = {"prompt": PROMPT, "width": side, "height": side, "num_inference_steps": steps}
        elif kind == "image-to-image":
            body = {"prompt": PROMPT, "image": _image(side, i), "num_inference_steps": steps, "strength": rng.choice((0.5, 0.8, 1.0))}
        elif kind == "upscale":
            body = {"image": _image(side // 2, i), "upscale_factor": 2}
        else:
            body = {"image": _image(side, i)}
        jobs.append((kind, body | ({"seed": 100 + i} if "prompt" in body else {})))
    return jobs


def estimates(infra: Infra, count: int, catalog: str) -> dict:
    stack = infra.stack("estimates", RENDERQ_MODELS_FILE=catalog)
    try:
        stack.worker("estimates")
        stack.api()
        client = stack.client()
        warm = _submit_each(stack, client, warm_up(), at_once=False)  # loads, and the first averages
        alone = _submit_each(stack, client, mix(count, seed=2), at_once=False)
        queued = []
        for start, jobs in enumerate(_chunks(mix(count, seed=3), QUEUE)):
            queued += _submit_each(stack, client, jobs, at_once=True)
    finally:
        stack.stop()
    return {"warm": warm, "alone": alone, "queued": queued, "queue": QUEUE, "tolerance": TOLERANCE,
            "alone_within": within(alone), "queued_within": within(queued), "within": within(alone + queued)}


def _chunks(jobs: list, size: int) -> list[list]:
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def _submit_each(stack, client, jobs: list[tuple[str, dict]], at_once: bool) -> list[dict]:
    """Submit `jobs` (all at once, or each after the one before has ended); each run's estimate at
    submit and its real time."""
    answered, ids = [], []
    for kind, body in jobs:
        if not at_once and ids:
            wait_drained(stack, ids[-1:], 120)
        response = client.post(f"/v1/{kind}", json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"POST /v1/{kind}: {response.status_code} {response.text[:300]}")
        run = response.json()
        answered.append((kind, body, run))
        ids.append(run["run_id"])
    done = wait_drained(stack, ids, 300)
    out = []
    for (kind, body, run), record in zip(answered, done):
        real = record["completed_at"] - record["created_at"]
        out.append({"operation": run["operation"], "width": run["request"].get("width"), "steps": body.get("num_inference_steps"),
                    "estimated": run["estimated_time"], "real": round(real, 4), "status": record.get("status"),
                    "position": run.get("queue_position"), "timings": record["timings"]})
    return out


def within(rows: list[dict], tolerance: float = TOLERANCE) -> float | None:
    """Share of rows whose estimate is within ±tolerance of the real time."""
    rated = [row for row in rows if row["estimated"] is not None and row["real"] > 0]
    if not rated:
        return None
    return sum(abs(row["estimated"] - row["real"]) <= tolerance * row["real"] for row in rated) / len(rated)
