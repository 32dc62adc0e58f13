"""What live previews cost a render (issue 15): the same job rendered by the worker's pipeline
in one process, with and without a preview every EVERY steps, alternating (which goes first
changes every round), so both see the same machine. With previews, each is made as a worker
makes it (the pipeline decodes the latents on the render thread, worker/previews.py's publisher
encodes it and publishes it, on its thread, to a run that is running in Redis: the script, the
pub/sub event), and the time counted runs until the render has returned AND every preview
handed over is published: an upper bound, since a worker would go on to store the images
while the last preview is sent. CPU seconds of the process (both threads) are counted too: on
a shared machine they show the cost with less of the noise wall time carries.

Run as a subprocess (`python -m bench.previews MODEL COUNT JOB_JSON EVERY`) with a stack's
environment (its Redis), as bench/direct.py is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .stack import PROMPT, Infra
from .stats import median

PREVIEW_JOB = {"prompt": PROMPT, "width": 256, "height": 256, "num_inference_steps": 20, "seed": 7}
EVERY = 5


def preview_cost(infra: Infra, count: int, job: dict = PREVIEW_JOB, every: int = EVERY) -> dict:
    env = infra.stack("previews").env
    out = subprocess.run(
        [sys.executable, "-m", "bench.previews", infra.tiny_model, str(count), json.dumps(job), str(every)],
        env=env, check=True, capture_output=True, text=True, start_new_session=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    off, on = median(result["off"]), median(result["on"])
    return result | {
        "job": job, "every": every, "median_off": off, "median_on": on, "ratio": on / off,
        "paired_ratio": median([b / a for a, b in zip(result["off"], result["on"])]),  # round by round
        # CPU seconds of the rendering process (both threads): what previews cost, less blurred than
        # wall time by what else runs on the machine.
        "cpu_ratio": median(result["cpu_on"]) / median(result["cpu_off"]),
        "ms_per_preview": (on - off) * 1000 / max(result["previews_per_render"], 1),
    }


def main(model: str, count: int, job: dict, every: int) -> dict:
    from core.settings import Settings
    from pipelines.base import StepReport
    from pipelines.loading import load_text_to_image
    from pipelines.text_to_image.pipeline import TextToImagePipeline
    from pipelines.text_to_image.request import TextToImageRequest
    from storage.records import RunRecord
    from storage.redis_client import make_redis
    from storage.runs import RunStore
    from worker.placement import placement_for
    from worker.previews import PreviewPublisher

    settings = Settings()
    pipeline = TextToImagePipeline(load_text_to_image(model, placement_for(settings)), model)
    request = TextToImageRequest.model_validate(job)
    runs = RunStore(make_redis(settings), 3600)
    publisher = PreviewPublisher(runs)
    pipeline.render(request)  # warm
    on_render_thread = _time_render_thread()
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    published, render_thread, handed = [], [], []
    for round_ in range(count):
        for mode in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
            record = runs.create(RunRecord(run_id=f"gen_preview_bench_{round_}_{mode}", request=job))
            runs.claim(record.run_id, 1, "bench", 3600)
            offered: list[int] = []

            def offer(step: int, total: int, image, record=record, offered=offered) -> None:
                offered.append(step)
                publisher.offer(record, step, total, image)

            # Off: the plain progress callback a worker passes when previews are off (worker/previews.py).
            report = StepReport(lambda step, total: None, offer, every) if mode == "on" else (lambda step, total: None)
            begin, begin_cpu = time.perf_counter(), time.process_time()
            pipeline.render(request, report)
            publisher.flush(30)
            seconds[mode].append(time.perf_counter() - begin)
            cpu[mode].append(time.process_time() - begin_cpu)  # this process's threads: render and publisher
            if mode == "on":
                published.append(runs.get(record.run_id).preview_id)
                handed.append(len(offered))
                render_thread.append(sum(on_render_thread))
            on_render_thread.clear()
    return {"off": seconds["off"], "on": seconds["on"], "cpu_off": cpu["off"], "cpu_on": cpu["on"],
            "previews_per_render": max(handed), "published": published,
            "render_thread_ms": median(render_thread) * 1000,  # per render: decoding and handing over
            "parts_ms": _parts(pipeline.pipe, runs, job)}


def _time_render_thread() -> list[float]:
    """Seconds the render thread spends on previews (pipelines/diffusion.py `_preview`, called after
    every step: deciding, decoding, handing over), appended to the list returned."""
    import pipelines.diffusion as diffusion

    spent: list[float] = []
    inner = diffusion._preview

    def timed(*args) -> None:
        begin = time.perf_counter()
        inner(*args)
        spent.append(time.perf_counter() - begin)

    diffusion._preview = timed
    return spent


def _parts(pipe, runs, job: dict, count: int = 20) -> dict:
    """Milliseconds of each part of one preview, alone: decoding (render thread), encoding and
    publishing (the publisher's thread)."""
    import torch

    from pipelines.previews import decode_previews
    from storage.previews import Preview
    from storage.records import RunRecord
    from worker.previews import encode_preview

    latents = torch.randn(1, 4, job["height"] // 8, job["width"] // 8)
    image = decode_previews(pipe, latents, [0])[0]
    data = encode_preview(image)
    record = runs.create(RunRecord(run_id="gen_preview_bench_parts", request=job))
    runs.claim(record.run_id, 1, "bench", 3600)
    preview = Preview(run_id=record.run_id, id=0, step=5, total_steps=20, width=image.width, height=image.height,
                      content_type="image/jpeg", data=data)
    parts = {"decode": lambda: decode_previews(pipe, latents, [0]), "encode": lambda: encode_preview(image),
             "publish": lambda: runs.previews.publish(preview, 1)}
    timed = {}
    for name, work in parts.items():
        begin = time.perf_counter()
        for _ in range(count):
            work()
        timed[name] = (time.perf_counter() - begin) * 1000 / count
    return timed | {"jpeg_bytes": len(data), "side": max(image.size)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]))))
