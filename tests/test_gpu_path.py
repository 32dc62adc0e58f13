"""The GPU path, checked on CPU: the settings reach the loaded pipeline (dtype, SDPA attention,
VAE tiling and slicing, channels_last, torch.compile and its warm-up), `renderq worker --gpus`
builds one worker per GPU, and `python -m bench --device cuda` refuses without CUDA.

Nothing here needs a GPU or starts a process: the CUDA branch of `optimise` is driven with a
CUDA placement over the tiny model's CPU weights (it moves nothing, and a compiled module
compiles only when called, which these tests never do with compile on).
"""

from __future__ import annotations

import pytest
import torch

from core.settings import Settings
from pipelines.device import Optimisations, Placement, choose_placement, optimise, warm_up
from pipelines.loading import load_text_to_image
from worker.placement import placement_for

CHANNELS_LAST = torch.channels_last


def _cpu(**options) -> Placement:
    return Placement("cpu", torch.float32, Optimisations(**options))


def _render(pipe, width: int = 64, height: int = 64):
    with torch.inference_mode():
        return pipe(prompt="a mug", width=width, height=height, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(3)).images[0]


def _sdpa_everywhere(pipe) -> bool:
    from diffusers.models.attention_processor import AttnProcessor2_0

    processors = [*pipe.unet.attn_processors.values(), *pipe.vae.attn_processors.values()]
    return bool(processors) and all(type(p) is AttnProcessor2_0 for p in processors)


# --- dtype and device --------------------------------------------------------------------------

def test_auto_keeps_todays_placement_on_a_machine_without_cuda():
    assert not torch.cuda.is_available()
    assert choose_placement("auto") == Placement("cpu", torch.float32)
    assert choose_placement("cpu", "auto").dtype is torch.float32
    assert choose_placement("cpu", "bfloat16").dtype is torch.bfloat16  # asked for: taken as asked
    with pytest.raises(RuntimeError, match="no CUDA device"):
        choose_placement("cuda")
    with pytest.raises(ValueError, match="unknown dtype"):
        choose_placement("cpu", "int8")


def test_on_cuda_auto_is_float16_and_bfloat16_needs_a_gpu_that_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla T4")
    assert choose_placement("auto").dtype is torch.float16
    assert choose_placement("auto", "float32").dtype is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert choose_placement("cuda", "bfloat16") == Placement("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(RuntimeError, match="bfloat16 .* Tesla T4"):
        choose_placement("cuda", "bfloat16")


def test_the_settings_become_the_placement_the_worker_loads_with():
    settings = Settings(device="cpu", dtype="bfloat16", channels_last=False, vae_tiling="on", vae_tiling_pixels=4096,
                        vae_slicing="off", torch_compile=True, compile_mode="max-autotune",
                        compile_shapes="512x512, 768x640")
    placement = placement_for(settings)
    assert (placement.device, placement.dtype) == ("cpu", torch.bfloat16)
    assert placement.options == Optimisations(channels_last=False, vae_tiling="on", vae_tiling_pixels=4096,
                                              vae_slicing="off", torch_compile=True, compile_mode="max-autotune",
                                              compile_shapes=((512, 512), (768, 640)))
    assert placement_for(Settings(device="cpu")).options == Optimisations(compile_shapes=((512, 512),))


def test_compile_shapes_must_be_sizes_in_multiples_of_8():
    from pydantic import ValidationError

    assert Settings(compile_shapes="").compile_sizes == ()
    for bad in ("512", "512x", "500x512", "0x512", "ax512"):
        with pytest.raises(ValidationError, match="RENDERQ_COMPILE_SHAPES"):
            Settings(compile_shapes=bad)


# --- what optimise does to a loaded pipeline ----------------------------------------------------

def test_a_cpu_load_keeps_float32_uses_sdpa_and_skips_channels_last_and_compile(tiny_model, caplog):
    caplog.set_level("WARNING", logger="pipelines.device")
    pipe = load_text_to_image(tiny_model, _cpu(torch_compile=True, compile_shapes=((64, 64),)))
    assert pipe.unet.dtype is torch.float32 and pipe.vae.dtype is torch.float32
    assert _sdpa_everywhere(pipe)
    assert pipe.unet.conv_in.weight.is_contiguous()  # the default memory format, not channels_last
    assert pipe.unet._compiled_call_impl is None
    assert "CUDA only" in caplog.text
    assert pipe.vae.use_slicing is False  # auto: off on CPU


def test_classic_attention_processors_become_sdpa(tiny_model):
    from diffusers.models.attention_processor import AttnProcessor

    pipe = load_text_to_image(tiny_model, _cpu())
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    assert not _sdpa_everywhere(pipe)
    optimise(pipe, _cpu())
    assert _sdpa_everywhere(pipe)


def test_vae_tiling_on_and_off_are_diffusers_switches(tiny_model):
    assert load_text_to_image(tiny_model, _cpu(vae_tiling="on")).vae.use_tiling is True
    assert load_text_to_image(tiny_model, _cpu(vae_tiling="off")).vae.use_tiling is False
    assert load_text_to_image(tiny_model, _cpu(vae_slicing="on")).vae.use_slicing is True


def test_auto_tiling_tiles_only_images_above_the_threshold(tiny_model, monkeypatch):
    """The tiny VAE's tile is 64 px: with a 64×96 threshold a 64×64 and a 96×64 image are decoded
    whole (and identical to an untiled render), a 128×128 one in tiles."""
    auto = load_text_to_image(tiny_model, _cpu(vae_tiling="auto", vae_tiling_pixels=64 * 96))
    whole = load_text_to_image(tiny_model, _cpu(vae_tiling="off"))
    tiled = []
    original = type(auto.vae).tiled_decode
    monkeypatch.setattr(type(auto.vae), "tiled_decode", lambda vae, z, *a, **k: tiled.append(tuple(z.shape[-2:])) or original(vae, z, *a, **k))
    assert _render(auto).tobytes() == _render(whole).tobytes()
    assert _render(auto, 96, 64).tobytes() == _render(whole, 96, 64).tobytes()
    assert tiled == []
    assert _render(auto, 128, 128).size == (128, 128)
    assert tiled == [(16, 16)]
    assert auto.vae.use_tiling is True  # set for that call, by its size
    _render(auto)
    assert auto.vae.use_tiling is False and tiled == [(16, 16)]


def test_a_cuda_placement_applies_channels_last_slicing_and_compile(tiny_model):
    """The CUDA branch on the CPU weights: nothing is moved, and with no shapes to warm nothing
    calls the compiled UNet (which would compile it)."""
    pipe = load_text_to_image(tiny_model, _cpu())
    optimise(pipe, Placement("cuda", torch.float32, Optimisations(torch_compile=True, compile_mode="max-autotune")))
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=CHANNELS_LAST)
    assert pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=CHANNELS_LAST)
    assert pipe.unet._compiled_call_impl is not None
    assert pipe.vae.use_slicing is True  # auto: on on CUDA
    again = load_text_to_image(tiny_model, _cpu())
    optimise(again, Placement("cuda", torch.float32, Optimisations(channels_last=False)))
    assert again.unet.conv_in.weight.is_contiguous() and again.unet._compiled_call_impl is None


def test_warm_up_renders_each_configured_shape_for_two_steps_and_a_second_batch_size(tiny_model):
    pipe = load_text_to_image(tiny_model, _cpu())
    seen = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    try:
        warm_up(pipe, ((64, 64), (96, 64)))
    finally:
        hook.remove()
    # One image with guidance: a batch of 2 latents, 4 channels, height/8 × width/8; 2 steps each;
    # then the first size with two images (a batch of 4), so other batch sizes are compiled too.
    assert seen == [(2, 4, 8, 8)] * 2 + [(2, 4, 8, 12)] * 2 + [(4, 4, 8, 8)] * 2


def test_the_controlnet_loader_tunes_its_model_too(monkeypatch):
    from pipelines import loading

    calls = []
    monkeypatch.setattr(loading, "optimise_model", lambda model, placement: calls.append(placement) or model)

    class FakeControlNet:
        @classmethod
        def from_pretrained(cls, source, dtype):
            return cls()

        def to(self, device):
            return self

    import diffusers

    monkeypatch.setattr(diffusers, "ControlNetModel", FakeControlNet)
    placement = _cpu()
    assert isinstance(loading.load_controlnet("x", placement), FakeControlNet) and calls == [placement]


# --- one worker per GPU -------------------------------------------------------------------------

def test_gpus_0_1_build_two_workers_each_seeing_its_own_gpu():
    from ops.cli import build_parser
    from ops.gpu_workers import worker_commands

    args = build_parser().parse_args(["worker", "--gpus", "0,1", "--loglevel", "DEBUG"])
    commands = worker_commands(args, environ={"PATH": "/bin"})
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in commands] == ["0", "1"]
    assert [c.hostname for c in commands] == ["gpu0@%h", "gpu1@%h"]
    for command in commands:
        assert command.argv[1:4] == ["-m", "ops.cli", "worker"]
        assert "--loglevel=DEBUG" in command.argv and f"--hostname={command.hostname}" in command.argv
        assert not any(arg.startswith("--gpus") for arg in command.argv)
        assert command.env["PATH"] == "/bin"


def test_gpus_all_takes_the_visible_gpus_and_hostnames_keep_the_given_name():
    from ops.cli import build_parser
    from ops.gpu_workers import worker_commands

    args = build_parser().parse_args(["worker", "--gpus", "all", "--hostname", "render@box"])
    commands = worker_commands(args, environ={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert [(c.env["CUDA_VISIBLE_DEVICES"], c.hostname) for c in commands] == [("2", "render-gpu2@box"), ("3", "render-gpu3@box")]
    commands = worker_commands(args, environ={}, count_gpus=lambda: 3)
    assert [c.env["CUDA_VISIBLE_DEVICES"] for c in commands] == ["0", "1", "2"]
    uuid = worker_commands(build_parser().parse_args(["worker", "--gpus", "GPU-8f2c1a7e-aaaa"]), environ={})
    assert [(c.env["CUDA_VISIBLE_DEVICES"], c.hostname) for c in uuid] == [("GPU-8f2c1a7e-aaaa", "gpu0@%h")]


@pytest.mark.parametrize("gpus, queues, error", [
    ("0,0", "", "twice"),
    ("0,x", "", "not a GPU"),
    (",", "", "no GPU"),
    ("all", "", "no GPU"),
    ("0", "renderq.webhooks", "render queues"),
])
def test_bad_gpu_lists_are_refused(gpus, queues, error):
    from ops.cli import build_parser
    from ops.gpu_workers import GpuListError, worker_commands

    args = build_parser().parse_args(["worker", "--gpus", gpus, *(["--queues", queues] if queues else [])])
    with pytest.raises(GpuListError, match=error):
        worker_commands(args, environ={}, count_gpus=lambda: 0)


def test_without_gpus_the_worker_runs_in_this_process_as_today(monkeypatch):
    from ops import cli

    started = []
    monkeypatch.setattr("worker.celery_app.app.worker_main", lambda argv: started.append(argv))
    assert cli._cmd_worker(cli.build_parser().parse_args(["worker", "--hostname", "one@%h"])) == 0
    [argv] = started
    assert "--pool=prefork" in argv and "--concurrency=1" in argv and "--hostname=one@%h" in argv


# --- the benchmark's GPU mode --------------------------------------------------------------------

def test_bench_gpu_mode_refuses_in_one_line_without_cuda(capsys):
    from bench.__main__ import main

    assert main(["--device", "cuda", "--quick"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "no CUDA device" in err


def test_bench_gpu_mode_parses_and_keeps_to_the_sections_that_render():
    from bench.__main__ import GPU_SECTIONS, _parse_args

    options = _parse_args(["--device", "cuda"])
    assert options.device == "cuda" and options.only == list(GPU_SECTIONS)
    assert _parse_args([]).device == "cpu"
    with pytest.raises(SystemExit):
        _parse_args(["--device", "cuda", "--only", "api"])
    with pytest.raises(SystemExit):
        _parse_args(["--device", "tpu"])


def test_the_gpu_section_of_benchmarks_md_is_replaced_and_kept():
    from bench.gpu_section import GPU_BEGIN, GPU_END, gpu_section_of, with_gpu_section

    cpu = "# renderq benchmarks\n\nCPU figures\n"
    first = with_gpu_section(cpu, "## On a GPU\n\nold\n")
    assert first.startswith(cpu) and first.count(GPU_BEGIN) == 1 and "old" in first
    second = with_gpu_section(first, "## On a GPU\n\nnew\n")
    assert "new" in second and "old" not in second and second.startswith(cpu) and second.endswith(GPU_END + "\n")
    # A CPU run rewrites the file: the GPU section it had is carried over.
    assert gpu_section_of(second) in with_gpu_section("# rewritten\n", gpu_section_of(second))
    assert gpu_section_of(cpu) == ""


@pytest.mark.integration
def test_the_supervisor_stops_every_worker_when_one_exits(tmp_path):
    """run_workers with stand-in workers: the first to exit (status 3) has the others stopped
    by SIGTERM, and its status is the command's."""
    import sys

    from ops.gpu_workers import WorkerCommand, run_workers

    def stand_in(gpu: str, code: str) -> WorkerCommand:
        script = ("import os, signal, sys, time\n"
                  f"open({str(tmp_path)!r} + '/' + os.environ['CUDA_VISIBLE_DEVICES'], 'w').write('up')\n"
                  "signal.signal(signal.SIGTERM, lambda *a: (open(" + repr(str(tmp_path)) + " + '/term-' + os.environ['CUDA_VISIBLE_DEVICES'], 'w').write('x'), sys.exit(0)))\n"
                  + code)
        return WorkerCommand(gpu, f"gpu{gpu}@%h", [sys.executable, "-c", script], {"CUDA_VISIBLE_DEVICES": gpu})

    status = run_workers([stand_in("0", "time.sleep(60)"), stand_in("1", "time.sleep(2); sys.exit(3)")], poll_seconds=0.05)
    assert status == 3
    assert (tmp_path / "0").exists() and (tmp_path / "1").exists()
    assert (tmp_path / "term-0").exists() and not (tmp_path / "term-1").exists()
