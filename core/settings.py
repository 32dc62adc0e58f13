"""The one settings object of renderq, read from `RENDERQ_*` environment variables.

It lives in `core/`, below every process room (api, worker, storage); `pipelines/` never reads
it (a pipeline gets its options passed in).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.sentinel import RedisUrl
from core.settings_gpu import PlacementSettings

DATA_DIR = Path(__file__).parent / "data"  # the data files renderq ships


class Settings(PlacementSettings, BaseSettings):
    # hide_input_in_errors: a model-level check's error would otherwise print every setting's
    # raw value, secrets included (RENDERQ_SECRETS_KEY, RENDERQ_S3_SECRET_KEY), into the log.
    model_config = SettingsConfigDict(env_prefix="RENDERQ_", extra="ignore", hide_input_in_errors=True)

    # Run records and the Celery broker.
    redis_url: RedisUrl = Field("redis://127.0.0.1:6379/0", description="Redis of the run records, keys, credits, "
        "idempotency answers and metrics (and the broker, unless RENDERQ_BROKER_URL says otherwise); "
        "redis+sentinel://h1:26379,h2:26379,h3:26379/master_name/db: the primary Sentinel elects (docs/deployment.md).")
    broker_url: RedisUrl | None = Field(None, description="Celery broker (redis+sentinel:// too); unset: RENDERQ_REDIS_URL.")
    embedded: bool = Field(
        False,
        description="fakeredis + in-memory Celery transport in one process (`renderq dev` sets it); also serves /v1 "
        "without keys.",
    )

    # Image objects.
    storage: Literal["s3", "local"] = Field(
        "s3", description="Where image objects live: an S3-compatible bucket, or local disk with HMAC-signed URLs."
    )
    s3_endpoint: str | None = Field(None, description="S3 API endpoint the API and the workers use; unset: AWS S3.")
    s3_public_endpoint: str | None = Field(
        None,
        description="Host put in the presigned URLs handed to callers (what they can reach); "
        "unset: RENDERQ_S3_ENDPOINT.",
    )
    s3_bucket: str = Field(
        "renderq", description="Bucket of the image objects; created if missing, with a 1-day lifecycle rule."
    )
    s3_access_key: SecretStr | None = Field(None, description="S3 access key; unset: boto3's credential chain.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key; unset: boto3's credential chain.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    local_dir: Path = Field(Path(".renderq/images"), description="Directory of the local storage backend.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Base of the API's own signed URLs: files (local storage), live previews."
    )
    url_secret: SecretStr = Field(
        SecretStr("renderq-dev-url-secret"), description="HMAC key of the API's own signed URLs; set your own in production."
    )

    # Expiry: records, objects and URLs all end at created_at + retention.
    retention_seconds: int = Field(24 * 3600, gt=0, description="Life of run records, assets, image objects and URLs (24 h).")
    tombstone_seconds: int = Field(
        7 * 24 * 3600, gt=0,
        description="After a run's record expires, its id answers 410 Gone for this long (a small tombstone), then "
        "404 like an id that never existed (7 days).",
    )
    url_ttl_seconds: int = Field(
        900, gt=0, description="Presigned URLs are re-signed on every read and live at most this long."
    )

    # Models.
    default_model: str = Field(
        "", description="Hub id or local directory; empty in `renderq dev` builds the tiny model."
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto",
        description="Where workers render: `auto` is CUDA where present (in float16 unless RENDERQ_DTYPE says "
        "otherwise), else CPU.",
    )
    test_pipelines: bool = Field(
        False, description="Accept `sleep:SECONDS` model ids (a fixed-cost fake render); benchmarks and tests only."
    )
    models_file: Path | None = Field(
        None,
        description="JSON catalog of the base models, LoRAs, upscalers, background removers, text segmenters, "
        "InstructPix2Pix models, ControlNets, IP-Adapters and depth models served (GET /v1/models); without it only "
        "the default model is served.",
    )
    templates_file: Path = Field(
        DATA_DIR / "templates.json",
        description="JSON file of the templates served (GET /v1/templates); the shipped set by default.",
    )
    style_presets_file: Path = Field(
        DATA_DIR / "style_presets.json",
        description="JSON file of the style presets served (GET /v1/style-presets); the shipped set by default.",
    )
    platforms_file: Path = Field(
        DATA_DIR / "platforms.json",
        description="JSON file of the social platforms and their formats (GET /v1/platforms); the shipped set by default.",
    )
    pools: str = Field(
        "",
        description="Worker pools, `NAME=MODEL,MODEL;NAME=MODEL` (catalog model ids, `default` the default model; "
        "overrides the catalog's `pool` fields). A model in no pool is in the default pool. A pool's runs go to its "
        "own queues (renderq.render.NAME.high, renderq.render.NAME, renderq.render.NAME.low), which only "
        "`renderq worker --pool NAME` consumes (docs/deployment.md#worker-pools).",
    )
    worker_pool: str = Field(
        "", description="The pool a render worker consumes and warms (`renderq worker --pool NAME` sets it); empty: "
        "the default pool."
    )
    model_cache_bytes: int = Field(
        8 * 2**30,
        gt=0,
        description="Worker LRU of loaded base models (with their ControlNets, IP-Adapters and InstructPix2Pix "
        "models): weights kept up to this many bytes.",
    )

    # Input images (uploads, base64, data URLs).
    max_upload_bytes: int = Field(
        10 * 2**20,
        gt=0,
        description="Largest input image file (LimeWire: 10 MB); the request body limit is derived from it.",
    )
    max_input_pixels: int = Field(
        4096 * 4096, gt=0, description="Largest input image in pixels; refused before decoding (decompression bombs)."
    )

    # Worker reliability.
    soft_time_limit: int = Field(300, gt=0, description="Seconds before a render is asked to stop.")
    hard_time_limit: int = Field(360, gt=0, description="Seconds before the render process is killed.")
    render_process_start_timeout: float = Field(
        300.0, gt=0, description="Seconds a new render process may take to load its model before Celery gives up on it."
    )
    heartbeat_interval: float = Field(
        1.0, gt=0, description="Seconds between a rendering worker's heartbeats (dead-worker detection)."
    )
    heartbeat_stale_after: float = Field(
        6.0, gt=0, description="A running run whose worker is silent this long is re-enqueued."
    )
    max_batch: int = Field(
        8, ge=1, le=64,
        description="Runs a worker renders in one model call: when it starts a run, it takes up to this many minus "
        "one more queued runs that can share the call (same operation, model, LoRAs, priority, size, steps and "
        "guidance, and for image-to-image and variations strength and output size), never waiting for any. "
        "1 renders every run alone.",
    )
    finisher: Literal["process", "thread"] = Field(
        "process",
        description="Where a render process stores and completes its rendered runs while it renders the next: a "
        "child process (no GIL shared with the model call) or a thread of its own. The embedded mode always uses a "
        "thread.",
    )
    fair_share_slots: int = Field(
        1, ge=0, le=1000,
        description="Fair share between tenants: runs of one tenant that may wait on a render queue (one per pool and "
        "priority) at once; its further runs wait staged and go onto the queue one by one as its earlier ones start, "
        "behind the other tenants' (docs/architecture.md, Fair share). A tenant's single run then starts after at "
        "most this many runs of each other tenant, whatever their backlog. 0: off (first come, first served; runs "
        "staged before still go out in turns).",
    )
    progress_min_interval: float = Field(
        0.2, ge=0, description="Progress writes to Redis are throttled to one per this many seconds."
    )
    preview_every_steps: int = Field(
        0, ge=0, le=150,
        description="Live previews: every this many denoising steps a worker decodes the latents cheaply (a linear "
        "latent-to-RGB map) into a small JPEG (≤ 256 px) for the run's SSE `preview` event and `preview_url`; "
        "0 turns them off (`renderq dev` sets 2). A request may refuse them with `\"previews\": false`.",
    )
    max_attempts: int = Field(3, gt=0, description="Deliveries of one run before it ends failed.")
    s3_max_attempts: int = Field(
        5, gt=0, description="Tries of one S3 upload (exponential backoff with jitter) before the run fails."
    )

    # Who may call, and how much (api/auth.py, api/rate_limits.py, storage/keys.py).
    auth_disabled: bool = Field(
        False, description="Serve /v1 without API keys. Never on the internet; `renderq dev` implies it."
    )
    rate_limit: str = Field(
        "600/minute", description="Default per-key request rate (`limits` notation: N/second|minute|hour)."
    )
    max_active_runs: int = Field(
        1000, gt=0, description="Default per-key cap on queued + running runs (a batch may hold 1000)."
    )
    health_public: bool = Field(
        False, description="Serve GET /v1/health (queues and workers per pool) without an API key."
    )
    idempotency_ttl_seconds: int = Field(24 * 3600, gt=0, description="How long Idempotency-Key answers are kept.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [],
        description="Origins whose web pages may call the API from a browser (CORS), comma-separated (or a JSON "
        "list), e.g. `https://app.example.com,http://localhost:5173`; `*` allows any. Empty: no cross-origin access.",
    )

    # Cost and credits (storage/prices.py, storage/credits.py).
    prices_file: Path = Field(
        DATA_DIR / "prices.json",
        description="JSON price table (credits per megapixel × step per operation); the shipped one by default.",
    )
    credits_required: bool = Field(
        False,
        description="Refuse runs of tenants never granted credits. Off: such a tenant is unmetered (runs report "
        "credits_used, nothing is deducted).",
    )

    # Logs: one JSON object per line for machines, or plain text for a terminal.
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines: one JSON object per line, or text for a terminal (`renderq dev` uses text)."
    )
    log_level: str = Field("INFO", description="Logging level of the API and worker processes.")
    access_log: bool = Field(False, description="One JSON line per API request (`renderq api --access-log`).")
    playground: bool = Field(True, description="Serve the playground, a page to try renderq in a browser, at `/`.")

    @field_validator("templates_file", "style_presets_file", "platforms_file", "prices_file", mode="before")
    @classmethod
    def _empty_means_shipped(cls, value, info: ValidationInfo):
        # An empty RENDERQ_*_FILE (or None) means the shipped file, not the directory ".".
        if value is None or not str(value).strip():
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_list(cls, value):
        # "https://a.example, https://b.example" or '["https://a.example"]'; an origin has no trailing slash.
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        return [str(origin).strip().rstrip("/") for origin in value if str(origin).strip()]

    @field_validator("pools")
    @classmethod
    def _pools_list(cls, value: str) -> str:
        # "gpu-xl = sdxl, flux ; small=default" → "gpu-xl=sdxl,flux;small=default"; a model in one pool.
        pools = parse_pools(value)
        return ";".join(f"{name}={','.join(models)}" for name, models in pools.items())

    @field_validator("worker_pool")
    @classmethod
    def _pool_name(cls, value: str) -> str:
        value = value.strip()
        if value and not valid_pool_name(value):
            raise ValueError(f"RENDERQ_WORKER_POOL: {value!r} is not a pool name ({POOL_NAME_RULE})")
        return value

    @model_validator(mode="after")
    def _hard_limit_after_soft(self) -> "Settings":
        # Celery arms the hard timer only once the soft one has fired: a hard limit below the
        # soft one would never kill a render stuck where the soft limit cannot reach it.
        if self.hard_time_limit <= self.soft_time_limit:
            raise ValueError("RENDERQ_HARD_TIME_LIMIT must be above RENDERQ_SOFT_TIME_LIMIT")
        return self

    # The caller's side: waiting, webhooks, batches.
    max_prefer_wait: float = Field(60, ge=0, description="Cap on `Prefer: wait=N` at submit, seconds.")
    openai_wait_seconds: float = Field(
        120, gt=0, description="How long the OpenAI Images routes (/v1/images/…) wait for their run to end before "
        "answering an error that carries the run id (the run goes on: poll GET /v1/generations/{run_id}).",
    )
    compat_wait_seconds: float = Field(
        120, gt=0, description="How long the synchronous dialect routes (/compat/<service>/…: LimeWire, Livepeer, "
        "Claid, ALwrity) wait for their run to end before answering an error, in the service's shape, that carries "
        "the run id (the run goes on: poll GET /v1/generations/{run_id}).",
    )
    max_batch_size: int = Field(1000, gt=0, description="Requests in one POST /v1/batches.")
    webhook_secret: SecretStr = Field(
        SecretStr("whsec_cmVuZGVycS1kZXYtd2ViaG9vay1zZWNyZXQ="),
        description="Standard Webhooks signing secret (whsec_ + base64); set your own in production.",
    )
    webhook_retry_schedule: list[float] = Field(
        [0, 5, 300, 1800, 7200, 18000, 36000],
        description="Seconds before each delivery attempt (JSON list); its length bounds the attempts.",
    )
    webhook_max_age: float = Field(
        86400, gt=0, description="No attempt is made this many seconds after the event."
    )
    webhook_timeout: float = Field(10, gt=0, description="Seconds a receiver has to answer one attempt.")
    webhook_lease: float = Field(
        300, gt=0, description="Seconds a webhook message handed to a webhook worker waits for its attempt to be recorded "
        "before it is due again (an attempt lost with a worker or to a Redis outage is made again, same webhook-id).",
    )
    webhook_allow_private: bool = Field(
        False, description="Allow webhook URLs that resolve to private, loopback or link-local addresses."
    )

    # Output destinations: tenants' own buckets (storage/destinations.py).
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key(s) encrypting destination credentials at rest; comma-separated to rotate "
        "(the first encrypts, any decrypts). Without it, destinations cannot be registered or used. "
        "`renderq dev` generates one into .renderq/secrets.key.",
    )
    destination_allow_private: bool = Field(
        False, description="Allow destination endpoints that resolve to private, loopback or link-local addresses."
    )

    @model_validator(mode="after")
    def _secrets_key_is_fernet(self) -> "Settings":
        if self.secrets_key is not None:
            from cryptography.fernet import Fernet

            keys = [key.strip() for key in self.secrets_key.get_secret_value().split(",") if key.strip()]
            try:
                for key in keys:  # as storage.destinations.Vault will read them
                    Fernet(key)
            except ValueError as exc:
                raise ValueError(f"RENDERQ_SECRETS_KEY: {exc}") from None
        return self

    @property
    def effective_broker_url(self) -> str:
        if self.embedded:
            return "memory://"
        return self.broker_url or self.redis_url

    @property
    def visibility_timeout(self) -> int:
        """kombu redelivers unacked messages after this; kept above the hard limit so that a
        long render is never handed to a second worker while the first still holds it."""
        return self.hard_time_limit * 2 + 60

    @property
    def compile_sizes(self) -> tuple[tuple[int, int], ...]:
        """RENDERQ_COMPILE_SHAPES as (width, height) pairs."""
        return tuple((int(w), int(h)) for w, _, h in (size.partition("x") for size in self.compile_shapes.split(",") if size))


    @property
    def pool_models(self) -> dict[str, tuple[str, ...]]:
        """RENDERQ_POOLS as pool name → model ids."""
        return parse_pools(self.pools)


POOL_NAME_RULE = "lowercase letters, digits and -, at most 40, not `high` or `low`"


def valid_pool_name(name: str) -> bool:
    # Not high/low: pool "high"'s normal queue would be the default pool's high one.
    return re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", name) is not None and name not in ("high", "low")


def parse_pools(value: str) -> dict[str, tuple[str, ...]]:
    pools: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for part in (part.strip() for part in value.split(";")):
        if not part:
            continue
        name, sep, models = (text.strip() for text in part.partition("="))
        ids = tuple(model.strip() for model in models.split(",") if model.strip())
        if not sep or not valid_pool_name(name) or not ids:
            raise ValueError(f"RENDERQ_POOLS: {part!r} is not NAME=MODEL,MODEL (a name: {POOL_NAME_RULE})")
        if name in pools or seen & set(ids):
            raise ValueError(f"RENDERQ_POOLS: {part!r} names a pool or a model twice")
        pools[name] = ids
        seen.update(ids)
    return pools


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
