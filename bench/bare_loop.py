"""The bare pipeline as a long-lived process: the baseline of the batching benchmarks.

`python -m bench.bare_loop MODEL` loads the tiny model once (placed as a worker places it, one
torch thread) and then renders what it is told, one JSON command a line on stdin, answering one
`BARE_JSON {…}` line on stdout each. Kept alive for a whole section, so that bare rounds can be
interleaved with the service's without paying imports and model load each time (machines are
shared and noisy: a ratio is only fair between runs a few seconds apart).

The loop calls `TextToImagePipeline` with a list of `Job`s, the same call the worker makes: one
job per call renders it alone, eight per call in one diffusers call (`run_diffusion_batch`:
per-image prompts, one seeded generator per image).

The driver side is `BareProcess`; it never imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "BARE_JSON "


def serve(model: str) -> None:
    import torch

    torch.set_num_threads(1)
    from core.settings import Settings
    from pipelines.loading import load_text_to_image
    from pipelines.text_to_image.pipeline import TextToImagePipeline
    from worker.placement import placement_for

    pipeline = TextToImagePipeline(load_text_to_image(model, placement_for(Settings())), model)
    _answer({"ready": True, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("op") == "quit":
            return
        _answer(render(pipeline, command["jobs"], command.get("per_call", 1), command.get("save")))


def render(pipeline, jobs: list[dict], per_call: int, save: str | None = None) -> dict:
    """Render `jobs` in calls of `per_call` jobs (each call's jobs share one render key), in order.
    Wall and process CPU seconds over the whole loop; each image saved as `save`/INDEX.png after."""
    from pipelines.base import Job
    from pipelines.text_to_image.request import TextToImageRequest

    requests = [TextToImageRequest.model_validate(job) for job in jobs]
    out = []
    begin, begin_cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(requests), per_call):
        out += pipeline([Job(request) for request in requests[start:start + per_call]])
    seconds, cpu_seconds = time.perf_counter() - begin, time.process_time() - begin_cpu
    if save:
        for index, images in enumerate(out):
            images[0].image.save(Path(save) / f"{index}.png")
    return {"images": sum(len(images) for images in out), "calls": -(-len(requests) // per_call),
            "per_call": per_call, "seconds": seconds, "cpu_seconds": cpu_seconds}


def _answer(value: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(value) + "\n")
    sys.stdout.flush()


class BareProcess:
    """The driver's handle on a `bench.bare_loop` process (a session of its own, like the workers,
    so that the kernel's per-session CPU sharing treats both alike)."""

    def __init__(self, model: str, env: dict, log_path: Path) -> None:
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_loop", model], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True,
        )
        self.log_path = log_path
        self.ready = self._read()

    def render(self, jobs: list[dict], per_call: int = 1, save: Path | None = None) -> dict:
        """The figures of one loop (see `render`), with images/s and images per CPU-second."""
        self.popen.stdin.write(json.dumps({"jobs": jobs, "per_call": per_call, "save": str(save) if save else None}) + "\n")
        self.popen.stdin.flush()
        result = self._read()
        result["images_per_second"] = result["images"] / result["seconds"]
        result["images_per_cpu_second"] = result["images"] / result["cpu_seconds"]
        return result

    def _read(self) -> dict:
        for line in self.popen.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])
        raise RuntimeError("bare loop exited:\n" + self.log_path.read_text(errors="replace")[-3000:])

    def close(self) -> None:
        try:
            self.popen.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.popen.stdin.close()
            self.popen.wait(30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.popen.kill()
            self.popen.wait(5)
        self._log.close()

    def __enter__(self) -> "BareProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1])
