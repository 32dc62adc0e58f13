"""Live previews of running runs: the latest picture of each, kept in Redis for a short while.

A worker publishes a preview (worker/previews.py) with one script that, only while the run is
running under that worker's attempt, numbers it (the run's `preview_id`, strictly increasing
over the run's life, attempts included), records its step on the run (`preview_step`), keeps
the picture under `renderq:preview:{run_id}` for PREVIEW_LIFE seconds and publishes the SSE
`preview` event on the run's channel. A run that has ended takes no preview, so no preview
event ever follows its final status event; the script that ends a run (storage/run_scripts.py
FINISH) deletes the picture and `preview_step` in the same step.

Callers fetch the picture at a signed URL the API serves (api/routes/previews.py), signed like
local storage's file URLs (storage/local.py) with RENDERQ_URL_SECRET.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import quote

import redis

from .local import sign
from .run_events import RUN_PREFIX, events_channel

PREVIEW_PREFIX = "renderq:preview:"
PREVIEWS_ROUTE = "/v1/previews/"
PREVIEW_LIFE = 60  # seconds a preview is kept after it is written (and its URL lives at most)
ID_MARK = "\x00id\x00"  # where the script puts the preview's number in the event it publishes

# KEYS: run hash, preview hash, events channel. ARGV: attempt, step, life, the event as JSON
# with ID_MARK for the id (split around it: before, after), then the preview's field/value
# pairs. Returns the preview's id, or false when the run is not running under this attempt.
PUBLISH = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return false end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return false end
local id = redis.call('HINCRBY', KEYS[1], 'preview_id', 1)
redis.call('HSET', KEYS[1], 'preview_step', ARGV[2])
redis.call('DEL', KEYS[2])
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'id', id)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[4] .. id .. ARGV[5])
return id
"""


def preview_key(run_id: str) -> str:
    return PREVIEW_PREFIX + run_id


@dataclass(frozen=True)
class Preview:
    """A preview as published: the picture and where the render was."""

    run_id: str
    id: int
    step: int
    total_steps: int
    width: int
    height: int
    content_type: str
    data: bytes

    def event(self) -> dict:
        """The SSE `preview` event's data (and a `run.preview` webhook's): the picture inline, as
        a data URL."""
        return {
            "run_id": self.run_id, "id": self.id, "step": self.step, "total_steps": self.total_steps,
            "width": self.width, "height": self.height, "content_type": self.content_type,
            "image": f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}",
        }


class PreviewStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._publish = client.register_script(PUBLISH)

    def publish(self, preview: Preview, attempt: int) -> int | None:
        """Keep and announce `preview` (its `id` is given now); its id, or None when the run is no
        longer running under `attempt` (ended, taken back): nothing is written then."""
        event = json.dumps({"type": "preview"} | preview.event() | {"id": ID_MARK}, separators=(",", ":"))
        before, after = event.split(json.dumps(ID_MARK))
        fields = {"step": preview.step, "total_steps": preview.total_steps, "width": preview.width,
                  "height": preview.height, "content_type": preview.content_type,
                  "data": base64.b64encode(preview.data).decode()}
        args = [attempt, preview.step, PREVIEW_LIFE, before, after, *[w for pair in fields.items() for w in pair]]
        keys = [RUN_PREFIX + preview.run_id, preview_key(preview.run_id), events_channel(preview.run_id)]
        published = self._publish(keys=keys, args=args)
        return int(published) if published else None

    def get(self, run_id: str) -> Preview | None:
        """The run's latest preview while it is kept (None once its run ended, or after PREVIEW_LIFE)."""
        raw = self.redis.hgetall(preview_key(run_id))
        if not raw:
            return None
        return Preview(
            run_id=run_id, id=int(raw["id"]), step=int(raw["step"]), total_steps=int(raw["total_steps"]),
            width=int(raw["width"]), height=int(raw["height"]), content_type=raw["content_type"],
            data=base64.b64decode(raw["data"]),
        )


def preview_url(base_url: str, secret: str, run_id: str, preview_id: int, now: float | None = None) -> tuple[str, float]:
    """(URL of the run's latest preview, epoch it stops working): PREVIEW_LIFE seconds. `id`
    makes each preview's URL its own (caches); the URL serves the latest one."""
    expires = int(now if now is not None else time.time()) + PREVIEW_LIFE
    signature = sign(secret, preview_signed_key(run_id), expires)
    return f"{base_url.rstrip('/')}{PREVIEWS_ROUTE}{quote(run_id)}?id={preview_id}&expires={expires}&signature={signature}", expires


def preview_signed_key(run_id: str) -> str:
    """What a preview URL's signature covers besides its expiry."""
    return f"previews/{run_id}"
