"""Request bodies that carry images: JSON (base64 / data URLs / asset ids) or multipart
(file parts, as LimeWire and Livepeer send them), and turning each input image into a
validated, stored asset before a run is enqueued."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel, ValidationError
from starlette.datastructures import UploadFile

from storage.assets import Asset, AssetStore
from storage.image_codec import ImageInfo, ImageRejected, decode_base64, open_image
from core.settings import Settings

from core.problems import ProblemError

MULTIPART = "multipart/form-data"


def body_limit(settings: Settings) -> int:
    """Largest body taken: two images (image + mask) base64-encoded, plus the other fields."""
    return settings.max_upload_bytes * 2 * 4 // 3 + 2**20


def rejected(exc: ImageRejected, field: str) -> ProblemError:
    return ProblemError(exc.slug, exc.status, detail=f"{field}: {exc.detail}")


async def read_body(request: Request, settings: Settings) -> tuple[dict, dict[str, bytes]]:
    """(fields, files) of a JSON or multipart body; 413/415/400 problems for what cannot be read."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > body_limit(settings):
        raise ProblemError("payload-too-large", 413, detail=f"the body is {length} bytes; the limit is {body_limit(settings)}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == MULTIPART:
        form = await request.form(max_files=4, max_fields=64, max_part_size=settings.max_upload_bytes * 4 // 3 + 1024)
        fields: dict = {}
        files: dict[str, bytes] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if value.size is not None and value.size > settings.max_upload_bytes:
                    raise ProblemError("payload-too-large", 413, detail=f"{name}: the file is {value.size} bytes; the limit is {settings.max_upload_bytes}")
                files[name] = await value.read()
            else:
                fields[name] = _form_value(name, value)
        return fields, files
    if content_type in ("application/json", ""):
        body = await request.body()
        if len(body) > body_limit(settings):
            raise ProblemError("payload-too-large", 413, detail=f"the body is over {body_limit(settings)} bytes")
        try:
            data = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProblemError("malformed-request", 400, detail="the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ProblemError("malformed-request", 400, detail="the request body must be a JSON object")
        return data, {}
    raise ProblemError("unsupported-media-type", 415, detail="send application/json or multipart/form-data")


# Form fields are text; these structured ones arrive as JSON ("[255,255,255,255]", '{"a": 0.8}').
JSON_FORM_FIELDS = {"mask_color_rgba", "loras", "platforms", "format_names", "focal_point"}


def _form_value(name: str, value: str):
    text = value.strip()
    if name in JSON_FORM_FIELDS and text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


@cache
def _int_literal_names(schema: type[BaseModel]) -> frozenset[str]:
    """The names (and aliases) of `schema`'s fields whose values are a Literal of ints
    (upscale_factor: Literal[2, 3, 4]): pydantic takes "2" for an int, never for a Literal."""
    names = set()
    for name, field in schema.model_fields.items():
        annotation = field.annotation
        options = [annotation, *get_args(annotation)] if get_origin(annotation) in (Union, UnionType) else [annotation]
        literals = [arg for option in options if get_origin(option) is Literal for arg in get_args(option)]
        if literals and all(isinstance(arg, int) and not isinstance(arg, bool) for arg in literals):
            alias = field.validation_alias
            names |= {name, *(alias.choices if isinstance(alias, AliasChoices) else ()), *([alias] if isinstance(alias, str) else [])}
    return frozenset(name for name in names if isinstance(name, str))


def _as_ints(schema: type[BaseModel], fields: dict) -> dict:
    """Form values are text: "2" for an int Literal field becomes 2, as a JSON body would send it."""
    names = _int_literal_names(schema)
    return {
        key: int(value.strip()) if key in names and isinstance(value, str) and value.strip().lstrip("-").isdigit() else value
        for key, value in fields.items()
    }


def validate_body(schema: type[BaseModel], fields: dict) -> BaseModel:
    """The body as `schema`, or the same 422 problem FastAPI gives for a JSON body."""
    try:
        return schema.model_validate(_as_ints(schema, fields))
    except ValidationError as exc:
        raise RequestValidationError([error | {"loc": ("body", *error["loc"])} for error in exc.errors()]) from None


@dataclass
class InputImage:
    """One input image: either new bytes (stored as an asset once everything checks out)
    or an existing asset."""

    info: ImageInfo
    data: bytes | None = None
    asset: Asset | None = None

    def store(self, assets: AssetStore) -> str:
        if self.asset is None:
            self.asset = store_upload(assets, self.data, self.info)
        return self.asset.asset_id


def store_upload(assets: AssetStore, data: bytes, info: ImageInfo) -> Asset:
    """Store validated bytes as an asset; unreachable storage is a 503 problem, not a 500."""
    try:
        return assets.upload(data, info.content_type, info.width, info.height)
    except Exception as exc:  # boto3/OS errors: whatever the backend raises
        raise ProblemError("service-unavailable", 503, detail=f"image storage is unreachable ({type(exc).__name__}); try again",
                           headers={"Retry-After": "2"}) from exc


def file_part_names(schema: type[BaseModel], slot: str) -> tuple[str, ...]:
    """The multipart file parts an image slot takes: its name, and the aliases of its field
    that are not `*_base64` (text) ones: ALwrity's `control_image` for `image`, say."""
    alias = schema.model_fields[slot].validation_alias
    aliases = alias.choices if isinstance(alias, AliasChoices) else ()
    return tuple(dict.fromkeys(name for name in (slot, *aliases) if isinstance(name, str) and not name.endswith("_base64")))


def resolve_slot(slot: str, body: BaseModel, files: dict[str, bytes], assets: AssetStore, settings: Settings,
                 required: bool) -> InputImage | None:
    """The image given for `slot` ("image" or "mask") in exactly one of the three ways."""
    inline = getattr(body, slot, None)
    asset_id = getattr(body, f"{slot}_asset_id", None)
    parts = [name for name in file_part_names(type(body), slot) if name in files]
    if len(parts) > 1:
        raise ProblemError("validation-error", 422, detail=f"give {slot} one way only, not as file parts {' and '.join(parts)}")
    given = [way for way, present in (("file", parts), ("base64", inline), ("asset", asset_id)) if present]
    if len(given) > 1:
        raise ProblemError("validation-error", 422, detail=f"give {slot} one way only (file part, base64, or {slot}_asset_id), not {' and '.join(given)}")
    if not given:
        if required:
            raise ProblemError("validation-error", 422, detail=f"{slot} is required: a file part, base64 / data URL, or {slot}_asset_id")
        return None
    if asset_id:
        asset = assets.get(asset_id)
        if asset is None:
            raise ProblemError("unknown-asset", 422, detail=f"{slot}_asset_id {asset_id} names no asset (never uploaded, or expired)")
        return InputImage(ImageInfo(asset.content_type, asset.width, asset.height), asset=asset)
    try:
        data = files[parts[0]] if parts else decode_base64(inline, settings.max_upload_bytes)
        _, info = open_image(data, settings.max_upload_bytes, settings.max_input_pixels)
    except ImageRejected as exc:
        raise rejected(exc, slot) from None
    return InputImage(info, data=data)
