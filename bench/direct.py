"""The bare pipeline in one process: the baseline every service figure is compared with.

Run as a subprocess (`python -m bench.direct MODEL COUNT [JOB_JSON]`) with the worker's environment, so
that it gets the same torch threads and the driver process never imports torch. Prints one
JSON object: import and load times, the first (cold) call, and each warm call's seconds.
"""

from __future__ import annotations

import json
import sys
import time

from bench.stack import TINY_JOB


def main(model: str, count: int, job: dict) -> dict:
    started = time.perf_counter()
    from core.settings import Settings
    from pipelines.text_to_image.request import TextToImageRequest
    from pipelines.loading import load_text_to_image
    from pipelines.text_to_image.pipeline import TextToImagePipeline
    from worker.placement import placement_for

    imported = time.perf_counter()
    # Placed as a worker places it, from the same environment (RENDERQ_DEVICE, RENDERQ_DTYPE, …).
    pipeline = TextToImagePipeline(load_text_to_image(model, placement_for(Settings())), model)
    loaded = time.perf_counter()
    request = TextToImageRequest.model_validate(job)
    pipeline.render(request)
    first = time.perf_counter()
    seconds, cpu = [], []
    for _ in range(count):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        pipeline.render(request, lambda step, total: None)
        seconds.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return {
        "cpu_seconds": cpu,
        "import_seconds": imported - started,
        "load_seconds": loaded - imported,
        "first_call_seconds": first - loaded,
        "seconds": seconds,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]) if len(sys.argv) > 3 else TINY_JOB)))
