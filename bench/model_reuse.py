"""`python -m bench.model_reuse`: what a worker pays for a model, job by job.

Drives the worker's own code path (`worker.runtime.Runtime.pipeline_for`, the model cache,
the registry's pipelines) in one process and prints, per job: wall time, how much of it was
getting the pipeline ready, and how many base-model loads it caused. Shows that

- the second job on a loaded base model pays no load time,
- switching operation on the same base (text-to-image → image-to-image → inpaint) reloads
  nothing (diffusers `from_pipe` shares the components),
- switching LoRAs loads each adapter once, then only re-weights,
- a second base model is one more load, and the first stays warm while memory allows.

Uses the tiny random-weight models built into a temporary directory unless --model names a
real base model (then LoRA rows use --lora ids from --models-file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image


def _jobs(size: int, steps: int):
    """(label, operation, model_id, loras, request fields) in the order a worker would see them."""
    common = {"prompt": "a blue ceramic mug", "num_inference_steps": steps, "seed": 1}
    t2i = common | {"width": size, "height": size}
    img = common | {"image_asset_id": "ast_bench"}
    return [
        ("1st text-to-image, cold base", "text-to-image", "", {}, t2i),
        ("2nd text-to-image, same base", "text-to-image", "", {}, t2i),
        ("image-to-image, same base", "image-to-image", "", {}, img | {"strength": 1.0}),
        ("inpaint, same base", "inpaint", "", {}, img | {"mask_color_rgba": [0, 0, 0, 255], "mask_color_threshold": 60}),
        ("text-to-image again", "text-to-image", "", {}, t2i),
        ("LoRA A, first use", "text-to-image", "", {"tiny-lora": 0.8}, t2i),
        ("LoRA B, first use", "text-to-image", "", {"tiny-lora-b": 0.8}, t2i),
        ("LoRA A again (switch only)", "text-to-image", "", {"tiny-lora": 0.8}, t2i),
        ("no LoRA (switch off)", "text-to-image", "", {}, t2i),
        ("other base, cold", "text-to-image", "tiny-base-1", {}, t2i),
        ("first base again (still warm)", "text-to-image", "", {}, t2i),
    ]


def run(model: str, models_file: str, size: int, steps: int, repeats: int) -> list[dict]:
    from pipelines.registry import OPERATIONS
    from core.settings import Settings
    from worker.runtime import Runtime

    runtime = Runtime(Settings(default_model=model, models_file=Path(models_file), device="cpu"))
    source = Image.effect_noise((size, size), 64).convert("RGB")
    rows = []
    for label, operation, model_id, loras, fields in _jobs(size, steps):
        spec = OPERATIONS[operation]
        request = spec.request.model_validate(fields)
        inputs = {"image": source} if "image_asset_id" in fields else None
        timings, ready_times, loads_before = [], [], runtime.models.stats.loads
        for attempt in range(repeats if "cold" not in label and "first use" not in label else 1):
            started = time.perf_counter()
            pipeline = runtime.pipeline_for(spec, model_id, request, loras)
            ready = time.perf_counter()
            pipeline.render(request, None, images=inputs or {})
            timings.append(time.perf_counter() - started)
            ready_times.append(ready - started)
        rows.append({
            "job": label,
            "seconds": statistics.median(timings),
            "ready_seconds": ready_times[0],  # the first job is the one that would pay any load
            "base_loads": runtime.models.stats.loads - loads_before,
        })
    rows.append({"job": "cache totals", "stats": runtime.models.stats})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_reuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="base model (hub id or directory); tiny when empty")
    parser.add_argument("--models-file", default="", help="catalog with tiny-lora, tiny-lora-b and tiny-base-1 ids")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="renderq-bench-") as tmp:
        model, models_file = args.model, args.models_file
        if not model:
            from devkit.tiny_catalog import build_tiny_catalog
            from devkit.tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "base"))
            models_file = str(build_tiny_catalog(model, Path(tmp) / "catalog", extra_bases=1))
        rows = run(model, models_file, args.size, args.steps, args.repeats)
    print(f"model reuse ({'tiny random-weight models' if not args.model else args.model}, {args.size}px, {args.steps} steps, CPU)")
    print(f"{'job':34} {'wall s (median)':>16} {'pipeline ready s (1st)':>23} {'base loads':>11}")
    for row in rows[:-1]:
        print(f"{row['job']:34} {row['seconds']:16.3f} {row['ready_seconds']:23.4f} {row['base_loads']:11d}")
    print("cache:", rows[-1]["stats"])
    print("(the first cold load also pays for importing diffusers/transformers into the process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
