"""Images of batched runs against the same requests rendered alone.

Sixteen distinct requests (own prompt, own seed, one shape) are queued with no worker running;
one worker then takes them eight to a model call. Their PNGs are fetched through the API's
signed URLs and compared pixel by pixel with the bare pipeline's images of the same requests
rendered one per call and eight per call (bench/bare_loop.py, the worker's own code)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageChops

from .batching import BATCH, bare_process
from .stack import PROMPT, TINY_JOB, Infra, submit_batch, wait_drained


def identical(infra: Infra, count: int) -> dict:
    jobs = [TINY_JOB | {"prompt": f"{PROMPT}, variant {i}", "seed": 3000 + i} for i in range(count)]
    stack = infra.stack("identical")
    folders = {name: stack.workdir / name for name in ("service", "alone", "together")}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    try:
        stack.api()
        with stack.client() as client:
            run_ids = submit_batch(client, jobs)
            worker = stack.worker("identical", wait=False)
            runs = wait_drained(stack, run_ids, 240)
            stack.drop(worker)
            for index, run_id in enumerate(run_ids):
                url = client.get(f"/v1/generations/{run_id}").json()["image_url"]
                response = client.get(url)
                response.raise_for_status()
                (folders["service"] / f"{index}.png").write_bytes(response.content)
        with bare_process(infra, "identical") as bare:
            bare.render(jobs, 1, save=folders["alone"])
            bare.render(jobs, BATCH, save=folders["together"])
    finally:
        stack.stop()
    failed = [r for r in runs if r.get("status") != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not complete: {failed[0]}")
    return identical_figures(folders, count, [int(r["timings"].get("batch_size", 1)) for r in runs])


def pixel_difference(a: Image.Image, b: Image.Image) -> tuple[int, int]:
    """(largest difference of one channel value, how many channel values differ) of two RGB images."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    histogram = diff.histogram()  # 256 bins per band
    return max(high for _, high in diff.getextrema()), sum(histogram) - sum(histogram[0::256])


def compare(first: list[Path], second: list[Path]) -> dict:
    """Pixel differences of image pairs: the largest, how many images and channel values differ."""
    largest, images, values, total = 0, 0, 0, 0
    for a_path, b_path in zip(first, second):
        with Image.open(a_path) as a, Image.open(b_path) as b:
            high, differing = pixel_difference(a, b)
            total += a.width * a.height * 3
        largest = max(largest, high)
        images += high > 0
        values += differing
    return {"largest": largest, "images_differing": images, "values_differing": values, "values": total, "images": len(first)}


def identical_figures(folders: dict[str, Path], count: int, batch_sizes: list[int]) -> dict:
    paths = {name: [folder / f"{i}.png" for i in range(count)] for name, folder in folders.items()}
    return {
        "jobs": count,
        "batch_sizes": batch_sizes,
        "bare_per_call": BATCH,
        "service_vs_alone": compare(paths["service"], paths["alone"]),
        "together_vs_alone": compare(paths["together"], paths["alone"]),
        "service_vs_together": compare(paths["service"], paths["together"]),
    }
