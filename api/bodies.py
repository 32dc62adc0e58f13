"""The request body of every operation, as callers send it, derived from the operation's
declaration (pipelines/<operation>/request.py): its request's fields, each input-image slot
(a file part, base64 / a data URL, or an asset id), what callers send besides the request,
and the edge's options (model and LoRAs, quality tier, aspect ratio, template, delivery).
Nothing here is written per operation; a new operation folder gets its body from here.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model

from pipelines.operation import Operation, Slot
from pipelines.registry import OPERATIONS
from pipelines.request_parts import MAX_SEED, RenderRequest
from storage.assets import ASSET_ID_PATTERN

from .delivery_options import DELIVERY_FIELDS, DeliveryOptions
from .model_selection import ModelSelection
from .quality import QualityField
from .schemas import AspectRatioSize
from .templates import TEMPLATE_FIELDS, TemplateFields


class OperationCreate(DeliveryOptions):
    """What every body shares: delivery options (priority, start deadline, webhook, output), and
    how the body becomes its operation's typed request once its inputs are stored."""

    OPERATION: ClassVar[Operation]
    SLOTS: ClassVar[tuple[str, ...]] = ()
    REQUIRED_SLOTS: ClassVar[tuple[str, ...]] = ()
    # The request's fields this body carries as they are (its input slots become asset ids).
    REQUEST_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Fields of the edge, never of the request: the request reads what they settled.
    EDGE_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"model_id", "loras", "lora_weight", "quality", "aspect_ratio", *TEMPLATE_FIELDS, *DELIVERY_FIELDS}
    )

    def resolve_defaults(self, deployment: Any) -> None:
        """Settle defaults that depend on what the deployment serves (its model catalog, its
        platform formats); pipelines.operation.RequestRejected for what it lacks."""

    def request_fields(self) -> dict:
        """Request fields the body settled itself (social formats: the formats it named)."""
        return {}

    def to_request(self, asset_ids: dict[str, str] | None = None) -> RenderRequest:
        """The operation's typed request: the body's fields as validated (no second validation;
        the body is a subclass of the request, so every rule of the request has held), its input
        slots as the asset ids they were stored as, and a seed chosen now when none was given."""
        request_type = self.OPERATION.request
        values = self.__dict__
        fields = {name: values[name] for name in self.REQUEST_FIELDS}
        fields |= self.request_fields()
        fields |= {f"{slot}_asset_id": asset_id for slot, asset_id in (asset_ids or {}).items()}
        if "seed" in request_type.model_fields and fields.get("seed") is None:
            fields["seed"] = secrets.randbelow(MAX_SEED + 1)
        return request_type.model_construct(**fields)


def slot_fields(slot: Slot) -> type[BaseModel]:
    """The two fields of an input-image slot: `{name}` (base64, a data URL, or in multipart a
    file part) and `{name}_asset_id`."""
    return create_model(
        f"{slot.name.title().replace('_', '')}Slot",
        **{
            slot.name: (str | None, Field(
                None, validation_alias=AliasChoices(slot.name, f"{slot.name}_base64", *slot.aliases),
                description=slot.description,
            )),
            f"{slot.name}_asset_id": (str | None, Field(None, pattern=ASSET_ID_PATTERN, description=slot.asset_description)),
        },
    )


def body_type(operation: Operation) -> type[OperationCreate]:
    """The body class of `operation`, its bases in the order that decides which field wins:
    what callers send instead of a request field first, the request itself last."""
    bases: list[type] = [operation.caller_fields] if operation.caller_fields else []
    bases += [TemplateFields] if operation.templates else []
    bases += [slot_fields(slot) for slot in operation.slots]
    bases += [AspectRatioSize] if operation.aspect_ratio else []
    bases += [ModelSelection] if operation.model_kind == "base" else []
    bases += [QualityField] if operation.quality else []
    bases += [OperationCreate, operation.body or operation.request]
    namespace = {
        "__module__": __name__,
        # The schema's description: what the caller-side fields say of themselves, if anything.
        "__doc__": operation.caller_fields.__doc__ if operation.caller_fields else None,
        "model_config": ConfigDict(
            extra="forbid", populate_by_name=True, json_schema_extra={"examples": list(operation.examples)}
        ),
        "OPERATION": operation,
        "SLOTS": tuple(slot.name for slot in operation.slots),
        "REQUIRED_SLOTS": tuple(slot.name for slot in operation.slots if slot.required),
    }
    if operation.templates:
        namespace["TEMPLATE_APPLIES"] = operation.templates
    body = type(operation.schema_name, tuple(bases), namespace)
    slots = {name for slot in operation.slots for name in (slot.name, f"{slot.name}_asset_id")}
    body.REQUEST_FIELDS = tuple(name for name in operation.request.model_fields if name in body.model_fields and name not in slots)
    return body


BODIES: dict[str, type[OperationCreate]] = {name: body_type(operation) for name, operation in OPERATIONS.items()}
GenerationCreate = BODIES["text-to-image"]  # /v1/generations, batches' items
