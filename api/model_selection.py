"""Which model (and LoRAs) a request renders with, checked against the catalog at submit time,
so an unknown id is a 422 now rather than a failed run later."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, field_validator

from storage.models_catalog import DEFAULT_MODEL_ID, ModelCatalog

from core.problems import ProblemError

MAX_LORAS = 4
LORA_WEIGHT_LIMIT = 2.0


class ModelSelection(BaseModel):
    model_id: str = Field(
        "", max_length=200,
        description="A model id from GET /v1/models; the deployment's default when empty. Naming a LoRA "
        "(ImagineoAI style) renders with it on its base model at `lora_weight`.",
    )
    loras: dict[str, float] = Field(
        default_factory=dict,
        description='Livepeer style {"lora-id": weight, …}: up to 4 LoRAs from GET /v1/models, weights -2..2. '
        "A JSON string is accepted too (multipart forms).",
        examples=[{"tiny-lora": 0.8}],
    )
    lora_weight: float | None = Field(
        None, ge=-LORA_WEIGHT_LIMIT, le=LORA_WEIGHT_LIMIT,
        description="ImagineoAI style: the weight of the LoRA named by model_id (default 1.0).",
    )

    @field_validator("loras", mode="before")
    @classmethod
    def _json_string(cls, value):
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError:
                raise ValueError('loras must be a JSON object such as {"lora-id": 0.8}') from None
        return value

    @field_validator("loras")
    @classmethod
    def _check_loras(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) > MAX_LORAS:
            raise ValueError(f"at most {MAX_LORAS} LoRAs")
        for name, weight in value.items():
            if not -LORA_WEIGHT_LIMIT <= weight <= LORA_WEIGHT_LIMIT:
                raise ValueError(f"LoRA {name}: weight {weight} is outside -2..2")
        return value


def unknown(detail: str) -> ProblemError:
    return ProblemError("unknown-model", 422, detail=detail)


def resolve_models(selection: BaseModel, catalog: ModelCatalog, kind: str) -> tuple[str, dict[str, float]]:
    """(model_id, loras) to record for an operation running on a `kind` model; raises a 422
    problem for any id the catalog does not serve. `selection` has model_id, and loras and
    lora_weight where the operation takes them."""
    model_id, loras = selection.model_id, dict(getattr(selection, "loras", {}))
    lora_weight = getattr(selection, "lora_weight", None)
    if kind != "base":
        if loras or lora_weight is not None:
            raise ProblemError("validation-error", 422, detail="LoRAs apply to diffusion operations only")
        if model_id and catalog.get(model_id, kind) is None:
            raise unknown(f"no {kind} model {model_id!r}; GET /v1/models lists them")
        return model_id, {}
    entry = catalog.get(model_id or DEFAULT_MODEL_ID)
    if model_id and entry is None:
        raise unknown(f"no model {model_id!r}; GET /v1/models lists the models served")
    if entry is not None and entry.kind == "lora":
        loras[entry.id] = lora_weight if lora_weight is not None else 1.0
        base = entry.bases()[0]
        model_id = "" if base == DEFAULT_MODEL_ID else base
    elif entry is not None and entry.kind != "base":
        raise unknown(f"model {model_id!r} is a {entry.kind} model, not a base model for this operation")
    elif lora_weight is not None:
        raise ProblemError("validation-error", 422, detail="lora_weight goes with a LoRA model_id")
    for name in loras:
        lora = catalog.get(name, "lora")
        if lora is None:
            raise unknown(f"no LoRA {name!r}; GET /v1/models lists the LoRAs served")
        if not lora.fits(model_id):  # a LoRA trained on another base would fail in the worker
            raise unknown(f"LoRA {name!r} fits base model {' or '.join(map(repr, lora.bases()))}, "
                          f"not {model_id or DEFAULT_MODEL_ID!r}")
    return model_id, loras


def resolve_control_models(needs, catalog: ModelCatalog, base_id: str) -> dict[str, str]:
    """The ControlNet and IP-Adapter ids a control request (`needs`, a
    pipelines.request_parts.ControlNeeds) renders with on base `base_id`: those it names, checked
    against kind, control type and base, or the first that fits. Raises a 422 naming what is
    missing (not a failed run); checks the depth model it needs too."""
    base = base_id or DEFAULT_MODEL_ID
    chosen = {}
    if needs.control_types:
        entry = catalog.companion("controlnet", base_id, needs.control_types, needs.controlnet_id)
        if entry is None and needs.controlnet_id:
            raise _misfit(catalog, "controlnet_id", "controlnet", needs.controlnet_id, base, needs.control_types)
        if entry is None:
            raise unknown(f"this deployment serves no {' or '.join(needs.control_types)} ControlNet for base model "
                          f"{base!r}{_fitting_elsewhere(catalog, 'controlnet', needs.control_types)}; see GET /v1/models")
        chosen["controlnet_id"] = entry.id
    if needs.ip_adapter:
        entry = catalog.companion("ip-adapter", base_id, model_id=needs.ip_adapter_id)
        if entry is None and needs.ip_adapter_id:
            raise _misfit(catalog, "ip_adapter_id", "ip-adapter", needs.ip_adapter_id, base)
        if entry is None:
            raise unknown(f"this deployment serves no ip-adapter model for base model {base!r}"
                          f"{_fitting_elsewhere(catalog, 'ip-adapter')}; see GET /v1/models")
        chosen["ip_adapter_id"] = entry.id
    if needs.depth_estimator and catalog.first("depth-estimator") is None:
        raise unknown("this deployment serves no depth-estimator model; see GET /v1/models")
    return chosen


def _misfit(catalog: ModelCatalog, field: str, kind: str, model_id: str, base: str,
            control_types: tuple[str, ...] = ()) -> ProblemError:
    """Why the `kind` model a request names in `field` cannot serve it."""
    entry = catalog.get(model_id, kind)
    if entry is None:
        return unknown(f"{field}: no {kind} model {model_id!r}; GET /v1/models lists them")
    if control_types and entry.options.get("control_type") not in control_types:
        return unknown(f"{field}: {model_id!r} is a {entry.options.get('control_type')} ControlNet; this request takes "
                       f"{' or '.join(control_types)}")
    return unknown(f"{field}: {model_id!r} fits base model {', '.join(map(repr, entry.bases()))}, not {base!r}")


def _fitting_elsewhere(catalog: ModelCatalog, kind: str, control_types: tuple[str, ...] = ()) -> str:
    """" (only for base model …)" when the catalog has such models for other bases."""
    bases = {base: None for entry in catalog.of_kind(kind)
             if not control_types or entry.options.get("control_type") in control_types for base in entry.bases()}
    return f" (only for base model {', '.join(map(repr, bases))})" if bases else ""
