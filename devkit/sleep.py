"""A pipeline whose cost is a fixed sleep, for benchmarks and tests only.

It lets the scaling benchmark measure the service (queue, claim, upload, records) with a
render cost that does not compete for the CPU: N workers sleeping in parallel should drain
a queue N times faster, whatever the number of cores. Never reachable unless the deployment
opts in (`RENDERQ_TEST_PIPELINES=1`, see worker/runtime.py).
"""

from __future__ import annotations

import time

from PIL import Image

from pipelines.base import GeneratedImage, Pipeline, ProgressCallback, RenderInterrupted
from pipelines.text_to_image.request import TextToImageRequest

SLEEP_MODEL_PREFIX = "sleep:"


def is_sleep_model(model: str) -> bool:
    return model.startswith(SLEEP_MODEL_PREFIX)


class SleepPipeline(Pipeline):
    """`sleep:SECONDS` sleeps SECONDS per denoising step, then returns flat grey images of the
    requested size (one per seed), reporting progress after every step like a real pipeline."""

    operation = "text-to-image"

    def __init__(self, pipe: None, model: str) -> None:
        if not is_sleep_model(model):
            raise ValueError(f"not a sleep model id: {model!r}")
        super().__init__(pipe, model)
        self.step_seconds = float(model[len(SLEEP_MODEL_PREFIX):])
        if not 0 <= self.step_seconds <= 60:
            raise ValueError(f"sleep per step must be 0–60 s, got {self.step_seconds}")

    def render(
        self, request: TextToImageRequest, on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        total = request.num_inference_steps
        for step in range(1, total + 1):
            time.sleep(self.step_seconds)
            if on_progress is not None and on_progress(step, total) is False:
                raise RenderInterrupted()
        parameters = self.parameters(request)
        return [
            GeneratedImage(
                image=request.exact_crop(Image.new("RGB", (request.width, request.height), (seed % 256,) * 3)),
                seed=seed,
                parameters=parameters | {"seed": seed},
            )
            for seed in request.image_seeds()
        ]
