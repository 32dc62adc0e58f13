"""Worker pools, fast tier: queue names per pool and priority, which pool a model belongs to,
and what `renderq worker --pool` consumes. Nothing here starts a process."""

from __future__ import annotations

import json

import pytest

from core.queue import RENDER_QUEUES, render_queue, render_queues
from core.settings import Settings
from ops.cli import build_parser
from ops.gpu_workers import GpuListError, worker_commands, worker_queues
from storage.models_catalog import ModelCatalog


def test_the_default_pool_keeps_todays_queue_names():
    expected = {"high": "renderq.render.high", "normal": "renderq.render", "low": "renderq.render.low"}
    assert render_queues(None) == render_queues("") == render_queues("default") == RENDER_QUEUES == expected


def test_a_named_pool_has_its_own_queue_per_priority():
    assert render_queues("xl") == {
        "high": "renderq.render.xl.high", "normal": "renderq.render.xl", "low": "renderq.render.xl.low",
    }
    assert list(render_queues("xl")) == ["high", "normal", "low"]  # the order workers drain them


@pytest.mark.parametrize("value", ["high=a", "low=a", "Big=a", "x", "x=", "x=a;y=a", "x=a;x=b"])
def test_pool_settings_that_would_collide_are_refused(value):
    with pytest.raises(ValueError):
        Settings(pools=value)


def test_pool_setting_is_normalised():
    settings = Settings(pools=" xl = sdxl, flux ; small=default ")
    assert settings.pools == "xl=sdxl,flux;small=default"
    assert settings.pool_models == {"xl": ("sdxl", "flux"), "small": ("default",)}


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [
        {"id": "xl", "kind": "base", "source": "/m/xl", "pool": "big"},
        {"id": "xl-pixel", "kind": "lora", "source": "/m/lora", "base": "xl"},
        {"id": "sd15", "kind": "base", "source": "/m/sd15"},
        {"id": "x2", "kind": "upscaler", "source": "/m/x2"},
    ]}))
    return path


def test_a_model_goes_to_its_catalog_pool_and_a_lora_to_its_bases(catalog_file):
    catalog = ModelCatalog.from_settings(Settings(models_file=catalog_file, default_model="/m/default"))
    assert {model: catalog.pool_of(model) for model in catalog.entries} == {
        "default": "default", "xl": "big", "xl-pixel": "big", "sd15": "default", "x2": "default",
    }
    assert catalog.pool_of("") == "default"  # the default model
    assert catalog.pools() == ["default", "big"]
    assert [entry.id for entry in catalog.in_pool("big")] == ["xl", "xl-pixel"]


def test_the_pools_setting_overrides_the_catalog(catalog_file):
    settings = Settings(models_file=catalog_file, default_model="/m/default", pools="small=default,x2;gpu=xl")
    catalog = ModelCatalog.from_settings(settings)
    assert [catalog.pool_of(m) for m in ("default", "x2", "xl", "xl-pixel", "sd15")] == [
        "small", "small", "gpu", "gpu", "default"]
    assert catalog.pools() == ["default", "gpu", "small"]


def test_a_pool_naming_a_model_the_catalog_lacks_is_refused(catalog_file):
    with pytest.raises(ValueError, match="nope"):
        ModelCatalog.from_settings(Settings(models_file=catalog_file, default_model="/m/d", pools="p=nope"))


def test_an_unknown_priority_goes_to_the_pools_normal_queue():
    assert render_queue("xl", "urgent") == "renderq.render.xl"
    assert render_queue(None, "low") == "renderq.render.low"


def test_worker_pool_option_consumes_only_that_pools_queues():
    parser = build_parser()
    assert worker_queues(parser.parse_args(["worker", "--pool", "xl"])) == (
        "renderq.render.xl.high,renderq.render.xl,renderq.render.xl.low", True)
    assert worker_queues(parser.parse_args(["worker"]))[0] == "renderq.render.high,renderq.render,renderq.render.low"
    assert worker_queues(parser.parse_args(["worker", "--queues", "renderq.webhooks"])) == ("renderq.webhooks", False)
    with pytest.raises(GpuListError):
        worker_queues(parser.parse_args(["worker", "--pool", "high"]))
    [command] = worker_commands(parser.parse_args(["worker", "--pool", "xl", "--gpus", "0"]), environ={})
    assert "--pool=xl" in command.argv and "--queues=renderq.render.xl.high,renderq.render.xl,renderq.render.xl.low" in command.argv
