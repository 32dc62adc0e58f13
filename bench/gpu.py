"""`python -m bench --device cuda`: the same measurements with the workers and the bare pipeline
on a CUDA device, written as a section of its own at the end of BENCHMARKS.md.

The section sits between two markers (bench/gpu_section.py): a GPU run replaces what is between
them (or appends them), and a CPU run, which rewrites the rest of the file, carries the section
over. Raw figures and plots go to bench/results/gpu/.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from .gpu_section import with_gpu_section

# The settings that change what a GPU run measures (pipelines/device.py); shown with the figures.
GPU_SETTINGS = ("RENDERQ_DTYPE", "RENDERQ_CHANNELS_LAST", "RENDERQ_VAE_TILING", "RENDERQ_VAE_SLICING",
                "RENDERQ_TORCH_COMPILE", "RENDERQ_COMPILE_MODE", "RENDERQ_COMPILE_SHAPES")


def cuda_device() -> dict | None:
    """The CUDA device the run would use ({name, torch, cuda}), or None where there is none."""
    import torch

    if not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
            "count": torch.cuda.device_count()}


def write_gpu_report(results: dict, out: Path) -> None:
    """Raw results and plots under bench/results/gpu/, the section into `out`."""
    from .report_plots import draw_plots

    directory = out.parent / "bench" / "results" / "gpu"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=1, default=str))
    plots = draw_plots(results, directory)
    body = render_gpu(results, {name: path.relative_to(out.parent).as_posix() for name, path in plots.items()})
    out.write_text(with_gpu_section(out.read_text(encoding="utf-8") if out.exists() else "# renderq benchmarks\n", body))


def render_gpu(results: dict, plots: dict[str, str]) -> str:
    """The section: what ran where, the targets table, and the sections of the CPU report that
    a GPU changes (their headings one level down)."""
    from .report import _cold_section, _drain_section, _fmt, _mark, _overhead_section, targets

    gpu = results.get("gpu", {})
    settings = ", ".join(f"`{k}={v}`" for k, v in gpu.get("settings", {}).items()) or "all defaults"
    lines = [
        "## On a GPU",
        "",
        "Written by `python -m bench --device cuda`: the measurements above that render, with the workers",
        "and the bare pipeline on the GPU (`RENDERQ_DEVICE=cuda`); the API, Redis and SeaweedFS as above.",
        f"Device: {gpu.get('name', '?')} (of {gpu.get('count', '?')}), torch {gpu.get('torch', '?')}, CUDA {gpu.get('cuda', '?')};",
        f"settings: {settings}. Raw figures: `bench/results/gpu/results.json`.",
        "",
        f"Run: {results.get('started', '?')}, {'quick' if results.get('quick') else 'full'} sizes, "
        f"{_fmt(results.get('seconds', float('nan')), ' s', 0)} in all; {os.cpu_count()} CPU cores "
        f"({platform.machine()}), Python {platform.python_version()}.",
        "",
        "| What | Target | Measured | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {what} | {target} | {measured} | {_mark(ok)} |" for what, target, measured, ok in targets(results)]
    lines += [""]
    for section in (_overhead_section, _drain_section, _cold_section):
        lines += ["#" + line if line.startswith("## ") else line for line in section(results, plots)]
    return "\n".join(lines) + "\n"


def gpu_settings(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in GPU_SETTINGS if name in environ}
