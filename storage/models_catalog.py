"""The models a deployment serves, read from a JSON catalog (`RENDERQ_MODELS_FILE`).

    {"models": [
      {"id": "sd15", "kind": "base", "source": "stable-diffusion-v1-5/stable-diffusion-v1-5",
       "name": "Stable Diffusion 1.5", "description": "...", "created_at": "2024-01-01T00:00:00Z"},
      {"id": "pixel-art", "kind": "lora", "source": "loras/pixel-art", "base": "sd15"},
      {"id": "swin2sr-x2", "kind": "upscaler", "source": "caidas/swin2SR-classical-sr-x2-64"},
      {"id": "segformer-bg", "kind": "background-removal", "source": "./segmenter"},
      {"id": "clipseg", "kind": "text-segmentation", "source": "CIDAS/clipseg-rd64-refined"},
      {"id": "instruct-pix2pix", "kind": "instruct-pix2pix", "source": "timbrooks/instruct-pix2pix"},
      {"id": "lineart", "kind": "controlnet", "source": "lllyasviel/control_v11p_sd15_lineart",
       "base": ["default", "sd15"], "options": {"control_type": "lineart"}},
      {"id": "ip-adapter-sd15", "kind": "ip-adapter", "source": "h94/IP-Adapter", "base": ["default", "sd15"],
       "options": {"subfolder": "models", "weight_name": "ip-adapter_sd15.safetensors"}},
      {"id": "dpt-hybrid", "kind": "depth-estimator", "source": "Intel/dpt-hybrid-midas"},
      {"id": "taesd", "kind": "preview-decoder", "source": "madebyollin/taesd", "base": ["default", "sd15"]}
    ]}

`source` is a hub id or a path (relative paths are taken from the catalog's directory). `base`
says which base model(s) a LoRA, ControlNet or IP-Adapter fits (an id or a list; unset: the
default model): a LoRA named as `model_id` renders on its (first) base, and a control operation
takes only a ControlNet / IP-Adapter that fits the base it renders on. A preview decoder (a
tiny autoencoder, diffusers' AutoencoderTiny: TAESD for SD 1.x/2.x, TAESDXL for SDXL) decodes
the live previews of renders on the bases it fits, instead of the linear latent→RGB map. The
API reads the catalog to list models and to refuse unknown ids at submit time; the worker
reads it to find what to load. The default model is always served, as id `default`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from core.queue import DEFAULT_POOL
from core.settings import POOL_NAME_RULE, Settings, parse_pools, valid_pool_name

ModelKind = Literal["base", "lora", "upscaler", "background-removal", "text-segmentation", "instruct-pix2pix",
                    "controlnet", "ip-adapter", "depth-estimator", "preview-decoder"]
COMPANION_KINDS = ("lora", "controlnet", "ip-adapter", "preview-decoder")  # render on a base model, in its pool
CONTROL_TYPES = ("lineart", "scribble", "canny", "depth")  # a controlnet's options.control_type
DEFAULT_MODEL_ID = "default"


class ModelEntry(BaseModel):
    id: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kind: ModelKind
    source: str = Field(..., description="Hub id or local path the worker loads.")
    name: str = ""
    description: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=timezone.utc))
    base: str | Annotated[list[str], Field(min_length=1)] | None = Field(
        None,
        description="LoRAs, ControlNets, IP-Adapters, preview decoders: the id of the base model they fit, or a list of ids; "
        "unset: the default model.",
    )
    pool: str | None = Field(
        None, description="The worker pool that serves it (RENDERQ_POOLS overrides); unset: the default pool, or for "
        "a LoRA, ControlNet or IP-Adapter its base's.",
    )
    options: dict = Field(
        default_factory=dict,
        description="Kind-specific settings: background_label (background-removal); control_type, one of "
        "lineart/scribble/canny/depth (controlnet); subfolder, weight_name, image_encoder_folder (ip-adapter).",
    )

    @field_validator("pool")
    @classmethod
    def _pool_name(cls, value: str | None) -> str | None:
        if value is not None and not valid_pool_name(value):
            raise ValueError(f"pool {value!r} is not a pool name ({POOL_NAME_RULE})")
        return value

    @model_validator(mode="after")
    def _control_type(self) -> "ModelEntry":
        if self.kind == "controlnet" and self.options.get("control_type") not in CONTROL_TYPES:
            raise ValueError(f"controlnet {self.id}: options.control_type must be one of {', '.join(CONTROL_TYPES)}")
        if self.kind == "ip-adapter" and not self.options.get("weight_name"):
            raise ValueError(f"ip-adapter {self.id}: options.weight_name names its weights file")
        return self

    def bases(self) -> tuple[str, ...]:
        """The base model ids this LoRA, ControlNet or IP-Adapter fits, preferred first."""
        if self.base is None:
            return (DEFAULT_MODEL_ID,)
        return (self.base,) if isinstance(self.base, str) else tuple(self.base)

    def fits(self, base_id: str) -> bool:
        """Whether it fits the base model `base_id` ("" is the default model)."""
        return (base_id or DEFAULT_MODEL_ID) in self.bases()


class ModelCatalog:
    def __init__(self, entries: list[ModelEntry], pools: dict[str, tuple[str, ...]] | None = None) -> None:
        self.entries = {entry.id: entry for entry in entries}
        # model id → pool: the catalog's `pool` fields, then RENDERQ_POOLS over them.
        self._pools = {entry.id: entry.pool for entry in entries if entry.pool and entry.pool != DEFAULT_POOL}
        for name, ids in (pools or {}).items():
            self._pools.update({model_id: name for model_id in ids})
        self._pools = {model_id: name for model_id, name in self._pools.items() if name != DEFAULT_POOL}

    @classmethod
    def from_settings(cls, settings: Settings) -> "ModelCatalog":
        return _load(settings.models_file, settings.default_model, settings.pools)

    def pool_of(self, model_id: str) -> str:
        """The pool whose workers render with `model_id` ("" is the default model): its own, else
        for a LoRA, ControlNet or IP-Adapter without one its (first) base's, else the default pool."""
        model_id = model_id or DEFAULT_MODEL_ID
        if model_id in self._pools:
            return self._pools[model_id]
        entry = self.entries.get(model_id)
        if entry is not None and entry.kind in COMPANION_KINDS and entry.bases()[0] != model_id:
            return self.pool_of(entry.bases()[0])
        return DEFAULT_POOL

    def pools(self) -> list[str]:
        """Every pool name, the default pool first."""
        return [DEFAULT_POOL, *sorted(set(self._pools.values()))]

    def in_pool(self, pool: str) -> list[ModelEntry]:
        """The entries `pool`'s workers serve."""
        return [entry for entry in self.entries.values() if self.pool_of(entry.id) == (pool or DEFAULT_POOL)]

    def get(self, model_id: str, kind: ModelKind | None = None) -> ModelEntry | None:
        entry = self.entries.get(model_id)
        return entry if entry is not None and (kind is None or entry.kind == kind) else None

    def of_kind(self, kind: ModelKind) -> list[ModelEntry]:
        return [entry for entry in self.entries.values() if entry.kind == kind]

    def first(self, kind: ModelKind) -> ModelEntry | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    def companion(self, kind: ModelKind, base_id: str, control_types: tuple[str, ...] = (),
                  model_id: str = "") -> ModelEntry | None:
        """The `kind` entry (controlnet, ip-adapter) a render on base `base_id` ("" is the
        default) uses: `model_id` when it is one that fits; else, without `model_id`, the first
        that fits that base — for a ControlNet, of the first of `control_types` served for it."""
        candidates = [self.get(model_id, kind)] if model_id else self.of_kind(kind)
        for control_type in control_types or (None,):
            for entry in candidates:
                if entry is not None and entry.fits(base_id) and control_type in (None, entry.options.get("control_type")):
                    return entry
        return None


@lru_cache(maxsize=8)
def _load(path: Path | None, default_model: str, pools: str = "") -> ModelCatalog:
    entries: list[ModelEntry] = []
    if default_model:
        entries.append(
            ModelEntry(
                id=DEFAULT_MODEL_ID, kind="base", source=default_model, name="Default model",
                description=f"The deployment's default base model ({Path(default_model).name or default_model}).",
            )
        )
    if path is not None and str(path) not in ("", "."):  # an empty env var means no catalog
        raw = json.loads(Path(path).read_text())
        for item in raw.get("models", []):
            entry = ModelEntry.model_validate(item)
            source = Path(path).parent / entry.source
            if entry.source.startswith((".", "/")) or source.exists():
                entry.source = str(source.resolve()) if not Path(entry.source).is_absolute() else entry.source
            entries.append(entry)
    named = parse_pools(pools)
    unknown = {model_id for ids in named.values() for model_id in ids} - {entry.id for entry in entries}
    if unknown:
        raise ValueError(f"RENDERQ_POOLS names models the catalog does not serve: {', '.join(sorted(unknown))}")
    return ModelCatalog(entries, named)
