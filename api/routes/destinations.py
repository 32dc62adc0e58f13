"""/v1/destinations: a tenant's own S3-compatible buckets, where runs with
`output: "storage://{name}/{folder}/"` write their images (storage/destinations.py).

Every route is scoped to the caller's tenant: another tenant's destination is a 404, and
can never be named in `output`. Credentials go in once and never come back out: views show
the access key id masked and the secret not at all.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core import tenancy
from storage.destinations import NAME_PATTERN, Destination, DestinationFailed, DestinationsDisabled
from storage.webhook_targets import UnsafeWebhookUrl, check_webhook_url

from core.problems import ProblemError

from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(prefix="/v1/destinations", tags=["destinations"])

DestinationName = Path(..., pattern=NAME_PATTERN, description="The destination's name, as in storage://{name}/.")
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PREFIX_PATTERN = r"^[A-Za-z0-9!_.*'()/-]*$"


class DestinationCreate(BaseModel):
    """An S3-compatible bucket (AWS S3, R2, MinIO, SeaweedFS, …) and credentials allowed to write to it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "name": "my-bucket", "bucket": "acme-renders", "prefix": "renderq/", "endpoint_url": "https://s3.eu-west-1.amazonaws.com",
            "region": "eu-west-1", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }]},
    )

    name: str = Field(..., pattern=NAME_PATTERN, description="Lower-case letters, digits, '-' and '_' (≤ 63): `output` says storage://{name}/….")
    bucket: str = Field(..., pattern=BUCKET_PATTERN, description="The bucket (S3 naming rules: 3–63 lower-case letters, digits, '.' and '-').")
    prefix: str = Field(
        "", max_length=512, pattern=PREFIX_PATTERN,
        description="Key prefix of every object written; a '/' is added when missing (\"renders\" → \"renders/\").",
    )
    endpoint_url: str = Field(
        ..., max_length=2000,
        description="http(s) URL of the S3 API, e.g. https://s3.eu-west-1.amazonaws.com or https://<account>.r2.cloudflarestorage.com; "
        "it must resolve to public addresses only.",
    )
    region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{1,32}$", description="Signing region (R2: `auto`).")
    addressing_style: Literal["path", "virtual"] = Field(
        "path", description="`path` (endpoint/bucket/key: MinIO, SeaweedFS, R2) or `virtual` (bucket.endpoint/key)."
    )
    access_key_id: str = Field(..., min_length=1, max_length=128, description="Shown back masked, never in full.")
    secret_access_key: SecretStr = Field(
        ..., min_length=1, max_length=256, description="Stored encrypted; never shown back. The key needs s3:PutObject on the prefix."
    )


class DestinationView(BaseModel):
    name: str
    bucket: str
    prefix: str = Field(..., description="Key prefix of every object written (\"\" or ending in '/').")
    endpoint_url: str
    region: str
    addressing_style: Literal["path", "virtual"]
    access_key_id: str = Field(..., examples=["****MPLE"], description="Masked: the last four characters only.")
    created_at: datetime = Field(..., description="When it was registered.")
    output: str = Field(..., examples=["storage://my-bucket/"], description="What to put in a request's `output` (add a folder after it).")


class DestinationList(BaseModel):
    destinations: list[DestinationView]


def destination_view(destination: Destination) -> DestinationView:
    return DestinationView(
        **destination.model_dump(include={"name", "bucket", "prefix", "endpoint_url", "region", "addressing_style"}),
        access_key_id=f"****{destination.access_key_hint}",
        created_at=datetime.fromtimestamp(destination.created_at, tz=timezone.utc),
        output=f"storage://{destination.name}/",
    )


def _not_found(name: str) -> ProblemError:
    return ProblemError("not-found", 404, detail=f"no destination {name!r}")


@router.post(
    "",
    status_code=201,
    response_model=DestinationView,
    responses={
        **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 422, 503)},
        409: {**PROBLEM_RESPONSES[422], "description": "this tenant already has a destination of that name"},
    },
    summary="Register an S3-compatible output destination (checked with a test write)",
)
def create_destination(body: DestinationCreate, response: Response, services: Services = Depends(get_services)) -> DestinationView:
    """Checks the endpoint (public addresses only), writes and deletes a test object
    (`{prefix}.renderq-write-check`) with the credentials, then stores them encrypted."""
    tenant = tenancy.stamp()
    store = services.destinations
    try:
        check_webhook_url(body.endpoint_url, services.settings.destination_allow_private, what="endpoint")
    except UnsafeWebhookUrl as exc:
        raise ProblemError("unsafe-destination-endpoint", 422, detail=f"endpoint_url: {exc}") from exc
    if store.get(tenant, body.name) is not None:
        raise ProblemError("destination-exists", 409, detail=f"a destination {body.name!r} exists; DELETE it first to register it again")
    access_key_id, secret = body.access_key_id, body.secret_access_key.get_secret_value()
    prefix = body.prefix.lstrip("/")
    try:
        destination = Destination(
            name=body.name, tenant=tenant, bucket=body.bucket, prefix=prefix + "/" if prefix and not prefix.endswith("/") else prefix,
            endpoint_url=body.endpoint_url, region=body.region, addressing_style=body.addressing_style,
            access_key_hint=access_key_id[-4:] if len(access_key_id) >= 12 else "",
            credentials=store.vault.seal(access_key_id, secret),
        )
        services.destination_clients.check(destination)
    except DestinationsDisabled as exc:
        raise ProblemError("destinations-unavailable", 503, detail=str(exc)) from exc
    except DestinationFailed as exc:
        raise ProblemError("destination-check-failed", 422, detail=str(exc)) from exc
    if not store.create(destination):
        raise ProblemError("destination-exists", 409, detail=f"a destination {body.name!r} exists; DELETE it first to register it again")
    response.headers["Location"] = f"{router.prefix}/{body.name}"
    return destination_view(destination)


@router.get("", response_model=DestinationList, responses={503: PROBLEM_RESPONSES[503]}, summary="This tenant's destinations")
def list_destinations(services: Services = Depends(get_services)) -> DestinationList:
    return DestinationList(destinations=[destination_view(d) for d in services.destinations.list(tenancy.stamp())])


@router.get(
    "/{name}", response_model=DestinationView, responses={k: PROBLEM_RESPONSES[k] for k in (404, 503)}, summary="One destination"
)
def get_destination(name: str = DestinationName, services: Services = Depends(get_services)) -> DestinationView:
    destination = services.destinations.get(tenancy.stamp(), name)
    if destination is None:
        raise _not_found(name)
    return destination_view(destination)


@router.delete(
    "/{name}", status_code=204, responses={k: PROBLEM_RESPONSES[k] for k in (404, 503)},
    summary="Delete a destination (queued runs naming it then fail with destination-failed)",
)
def delete_destination(name: str = DestinationName, services: Services = Depends(get_services)) -> Response:
    if not services.destinations.delete(tenancy.stamp(), name):
        raise _not_found(name)
    return Response(status_code=204)
