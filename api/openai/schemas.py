"""The OpenAI routes in /openapi.json: their request bodies and answers, tagged "openai"."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .fields import ImagesFields


class ImageData(BaseModel):
    url: str | None = Field(None, description="Signed URL, valid while the run is kept (24 h).")
    b64_json: str | None = Field(None, description="The image, base64 (response_format=b64_json).")


class ImagesResponse(BaseModel):
    created: int = Field(..., description="Unix time the run was created.")
    data: list[ImageData]
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    run_id: str = Field(..., description="The renderq run: GET /v1/generations/{run_id}.")


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    run_id: str | None = Field(None, description="On a timeout: the run, which goes on.")


class OpenAIErrorBody(BaseModel):
    error: OpenAIError


def request_body_doc(fields: type[ImagesFields], files: tuple[str, ...] = ()) -> dict:
    schema = fields.model_json_schema()
    schema.pop("title", None)
    if not files:
        return {"required": True, "content": {"application/json": {"schema": schema}}}
    multipart = {**schema, "properties": dict(schema["properties"])}
    for name in files:
        multipart["properties"][name] = {"type": "string", "format": "binary", "description": f"The {name} file (PNG, JPEG or WebP)."}
    multipart["required"] = [*schema.get("required", []), "image"]
    return {"required": True, "content": {"multipart/form-data": {"schema": multipart}}}


def responses_doc(streams: bool = False) -> dict:
    error = {"model": OpenAIErrorBody}
    streamed = {"content": {"text/event-stream": {}}, "description": "The images, once the run has ended; with "
                "`stream: true`, Server-Sent Events: `image_generation.partial_image` (at most `partial_images`, from the "
                "live previews), then `image_generation.completed` per image, or `error`."}
    return {
        200: {"model": ImagesResponse, "description": "The images, once the run has ended."} | (streamed if streams else {}),
        400: error | {"description": "invalid_request_error (validation, unknown parameter, refused value)"},
        401: error | {"description": "no or unknown API key"},
        404: error | {"description": "model_not_found"},
        429: error | {"description": "rate limit, active-run cap, or insufficient credits (insufficient_quota)"},
        504: error | {"description": "the run did not end within RENDERQ_OPENAI_WAIT_SECONDS; `run_id` names it"},
    }
