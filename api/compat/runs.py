"""What the synchronous dialects (Claid, ALwrity) share about a finished run: the bounded wait
(api/compat/common.py) with a run that ended otherwise than completed as an error naming it,
its images as the services return them, and a validation problem's messages by field."""

from __future__ import annotations

import base64

from core.problems import ProblemError
from storage.records import RunRecord, RunStatus, StoredImage

from ..services import Services
from .common import wait_for_run


async def completed(services: Services, record: RunRecord) -> RunRecord:
    """The run once it completed: past RENDERQ_COMPAT_WAIT_SECONDS a 504 problem naming it
    (common.wait_for_run); ended failed, canceled or expired, a 500 problem naming it."""
    record = await wait_for_run(services, record)
    if record.status != RunStatus.completed:
        detail = record.error.detail if record.error is not None else None
        raise ProblemError("internal-error", 500, detail=f"the run ended {record.status.value}: {detail or 'no detail'}",
                           run_id=record.run_id, code=f"run_{record.status.value}")
    return record


def images_of(record: RunRecord) -> list[StoredImage]:
    """The run's rendered images (a mask or control map returned besides them left out)."""
    return [image for image in record.images if image.role == "image"]


def data_url(services: Services, image: StoredImage) -> str:
    """The image as a data URL (blocking: an object storage read)."""
    return f"data:{image.content_type};base64,{plain_base64(services, image)}"


def plain_base64(services: Services, image: StoredImage) -> str:
    return base64.b64encode(services.images.get(image.key)).decode()


def seconds_taken(record: RunRecord) -> float:
    return round((record.completed_at or record.created_at) - record.created_at, 3)


def field_messages(problem: dict, names) -> dict[str, list[str]]:
    """A validation problem's messages by field, each field under the service's name for it
    (`names`: renderq's field → the service's); the whole body's under "body"."""
    out: dict[str, list[str]] = {}
    for error in problem.get("errors") or []:
        field = error.get("field")
        out.setdefault(names(field) if field else "body", []).append(str(error.get("message", "")))
    return out
