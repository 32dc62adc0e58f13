"""Output destinations: tenants' own buckets (a second bucket on the test SeaweedFS), their
credentials kept encrypted, and runs with `output: storage://…` writing their PNGs there."""

from __future__ import annotations

import secrets

import fakeredis
import pytest
from cryptography.fernet import Fernet

from storage.destinations import (
    INDEX_PREFIX, RECORD_PREFIX, Destination, DestinationClients, DestinationFailed, DestinationStore, Vault, parse_output,
)
from tests.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, make_stack, wait_for_run
from tests.images import data_url, decode, noise
from tests.test_auth_and_limits import assert_problem

SECRETS_KEY = Fernet.generate_key().decode()
SMALL = {"prompt": "a red cube", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}


# --- units ----------------------------------------------------------------------------------

def test_output_uri_names_a_destination_and_a_folder():
    assert parse_output("storage://mine/") == ("mine", "")
    assert parse_output("storage://mine") == ("mine", "")
    assert parse_output("storage://mine/spring/2026/") == ("mine", "spring/2026/")
    assert parse_output("storage://mine/spring") == ("mine", "spring/")
    for bad in ("s3://mine/x/", "storage://Mine/", "storage://mine/../x/", "storage://mine//x/", "storage://mine/a b/", "storage:///x/"):
        with pytest.raises(ValueError):
            parse_output(bad)


def test_credentials_are_stored_encrypted_and_the_worker_refuses_a_private_endpoint():
    client = fakeredis.FakeRedis(decode_responses=True)
    vault = Vault(SECRETS_KEY)
    store = DestinationStore(client, vault)
    destination = Destination(
        name="mine", tenant="t1", bucket="b1", endpoint_url="http://127.0.0.1:9", access_key_hint="1234",
        credentials=vault.seal("AKIA1234", "the-secret"),
    )
    assert store.create(destination) and not store.create(destination)
    raw = client.hgetall(f"{RECORD_PREFIX}t1:mine")
    assert all("the-secret" not in value and "AKIA1234" not in value for value in raw.values())
    assert vault.open(raw["credentials"]) == ("AKIA1234", "the-secret")
    # Rotation: a new key first still opens what the old one sealed; a foreign key cannot.
    assert Vault(f"{Fernet.generate_key().decode()},{SECRETS_KEY}").open(raw["credentials"]) == ("AKIA1234", "the-secret")
    with pytest.raises(DestinationFailed, match="cannot be decrypted"):
        Vault(Fernet.generate_key().decode()).open(raw["credentials"])
    assert store.get("t2", "mine") is None and store.list("t2") == []
    # The worker checks the endpoint again before writing (DNS may have changed since registration).
    with pytest.raises(DestinationFailed, match="not a public address"):
        DestinationClients(store, allow_private=False, max_attempts=1).target("t1", "storage://mine/x/")
    with pytest.raises(DestinationFailed, match="no longer exists"):
        DestinationClients(store, allow_private=True, max_attempts=1).target("t1", "storage://gone/")
    # One S3 client per destination, kept until the destination is registered again.
    clients = DestinationClients(store, allow_private=True, max_attempts=1)
    first = clients.target("t1", "storage://mine/x/").client
    assert clients.target("t1", "storage://mine/y/").client is first
    client.hset(f"{RECORD_PREFIX}t1:mine", "credentials", vault.seal("AKIA5678", "rotated"))
    assert clients.target("t1", "storage://mine/x/").client is not first
    assert store.delete("t1", "mine") and not client.exists(f"{RECORD_PREFIX}t1:mine", f"{INDEX_PREFIX}t1")


def test_dev_mode_generates_its_secrets_key_once(tmp_path, monkeypatch):
    from ops import embedded

    monkeypatch.setattr(embedded, "DEV_HOME", tmp_path / ".renderq")
    key = embedded._ensure_secrets_key()
    assert embedded._ensure_secrets_key() == key and Vault(key).enabled
    assert (tmp_path / ".renderq" / "secrets.key").stat().st_mode & 0o777 == 0o600


def test_a_batch_checks_each_output_once_and_off_the_event_loop(tmp_path):
    import asyncio

    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.unit_services import unit_services

    services = unit_services(tmp_path)  # embedded: no keys, the one tenant ""
    services.destinations.create(Destination(name="mine", bucket="b1", endpoint_url="http://127.0.0.1:9", credentials="sealed"))
    lookups = []
    real_get = services.destinations.get

    def get(tenant, name):
        try:
            asyncio.get_running_loop()
            lookups.append("event loop")
        except RuntimeError:
            lookups.append(name)
        return real_get(tenant, name)

    services.destinations.get = get
    with TestClient(create_app(services)) as client:
        items = [SMALL | {"output": "storage://mine/a/"}] * 5 + [SMALL | {"output": "storage://mine/b/"}] * 5
        accepted = client.post("/v1/batches", json=items)
        assert accepted.status_code == 202, accepted.text
        assert lookups == ["mine", "mine"]  # one per distinct output, in the thread pool
        refused = client.post("/v1/batches", json=items + [SMALL | {"output": "storage://nope/"}])
        assert assert_problem(refused, 422, "unknown-destination")["index"] == 10


def test_a_bad_secrets_key_stops_start_up_without_printing_any_secret(monkeypatch):
    from pydantic import ValidationError

    from core.settings import Settings

    monkeypatch.setenv("RENDERQ_SECRETS_KEY", "not-a-fernet-key-but-still-a-secret")
    monkeypatch.setenv("RENDERQ_S3_SECRET_KEY", "the-s3-secret-value")
    with pytest.raises(ValidationError) as failed:
        Settings()
    message = str(failed.value)
    assert "RENDERQ_SECRETS_KEY" in message
    assert "still-a-secret" not in message and "s3-secret" not in message


# --- the real stack ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dstack(tmp_path_factory, tiny_model, redis_url, s3_endpoint):
    """A stack that keeps credentials (RENDERQ_SECRETS_KEY) and may write to SeaweedFS on localhost."""
    stack = make_stack(
        tmp_path_factory, tiny_model, redis_url, s3_endpoint,
        RENDERQ_SECRETS_KEY=SECRETS_KEY, RENDERQ_DESTINATION_ALLOW_PRIVATE="true",
    )
    try:
        stack.worker("destinations")
        stack.api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def dapi(dstack):
    with dstack.client() as client:
        yield client


def new_bucket(stack) -> str:
    name = f"dest-{secrets.token_hex(4)}"
    stack.s3().create_bucket(Bucket=name)
    return name


def registration(stack, bucket: str, name: str | None = None, **overrides) -> dict:
    return {
        "name": name or bucket, "bucket": bucket, "prefix": "renders", "endpoint_url": stack.env["RENDERQ_S3_ENDPOINT"],
        "access_key_id": S3_ACCESS_KEY, "secret_access_key": S3_SECRET_KEY, **overrides,
    }


def test_register_list_get_delete_and_the_secret_never_comes_back(dstack, dapi):
    bucket = new_bucket(dstack)
    created = dapi.post("/v1/destinations", json=registration(dstack, bucket))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/destinations/{bucket}"
    view = created.json()
    assert view["access_key_id"] == "****" + S3_ACCESS_KEY[-4:] and view["prefix"] == "renders/"
    assert view["output"] == f"storage://{bucket}/" and "secret_access_key" not in view
    listed, one = dapi.get("/v1/destinations"), dapi.get(f"/v1/destinations/{bucket}")
    assert one.json() == view and view in listed.json()["destinations"]
    for response in (created, listed, one):
        assert S3_SECRET_KEY not in response.text and S3_ACCESS_KEY not in response.text
    stored = dstack.redis().hgetall(f"{RECORD_PREFIX}tests:{bucket}")
    assert stored and all(S3_SECRET_KEY not in value for value in stored.values())
    assert Vault(SECRETS_KEY).open(stored["credentials"]) == (S3_ACCESS_KEY, S3_SECRET_KEY)
    # The check's test object was cleaned up.
    assert dstack.s3().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert_problem(dapi.post("/v1/destinations", json=registration(dstack, bucket)), 409, "destination-exists")
    assert dapi.delete(f"/v1/destinations/{bucket}").status_code == 204
    assert_problem(dapi.get(f"/v1/destinations/{bucket}"), 404, "not-found")
    assert_problem(dapi.delete(f"/v1/destinations/{bucket}"), 404, "not-found")


def test_bad_credentials_a_missing_bucket_or_a_dead_endpoint_is_a_422(dstack, dapi):
    bucket = new_bucket(dstack)
    cases = {
        "wrong-secret": registration(dstack, bucket, "wrong-secret", secret_access_key="not-the-secret"),
        "unknown-key": registration(dstack, bucket, "unknown-key", access_key_id="AKIANOBODY"),
        "no-bucket": registration(dstack, f"no-such-{bucket}", "no-bucket"),
        "dead-endpoint": registration(dstack, bucket, "dead-endpoint", endpoint_url="http://127.0.0.1:1"),
    }
    for name, body in cases.items():
        problem = assert_problem(dapi.post("/v1/destinations", json=body), 422, "destination-check-failed")
        assert ("test write" in problem["detail"] or "does not exist" in problem["detail"]), name
        assert "not-the-secret" not in problem["detail"]
        assert_problem(dapi.get(f"/v1/destinations/{name}"), 404, "not-found")  # nothing was stored
    assert f"no-such-{bucket}" not in [b["Name"] for b in dstack.s3().list_buckets()["Buckets"]]


def test_another_tenant_can_neither_see_nor_use_a_destination(dstack, dapi):
    bucket = new_bucket(dstack)
    assert dapi.post("/v1/destinations", json=registration(dstack, bucket)).status_code == 201
    with dstack.client(key=dstack.create_key("other-tenant")) as other:
        assert other.get("/v1/destinations").json() == {"destinations": []}
        assert_problem(other.get(f"/v1/destinations/{bucket}"), 404, "not-found")
        assert_problem(other.delete(f"/v1/destinations/{bucket}"), 404, "not-found")
        problem = assert_problem(other.post("/v1/generations", json=SMALL | {"output": f"storage://{bucket}/x/"}), 422, "unknown-destination")
        assert bucket in problem["detail"]
    assert dapi.get(f"/v1/destinations/{bucket}").status_code == 200  # still there for its owner


def test_malformed_output_or_unknown_destination_is_a_422_on_every_create(dapi):
    for bad in ("s3://bucket/x/", "storage://Bad Name/", "storage://mine/../up/", "storage://" + "a" * 600):
        problem = assert_problem(dapi.post("/v1/generations", json=SMALL | {"output": bad}), 422, "validation-error")
        assert problem["errors"][0]["field"] == "output"
    assert_problem(dapi.post("/v1/generations", json=SMALL | {"output": "storage://nope/x/"}), 422, "unknown-destination")
    upscale = {"image": data_url(noise(32, 32)), "mode": "fast", "upscale_factor": 2, "output": "storage://nope/"}
    assert_problem(dapi.post("/v1/upscale", json=upscale), 422, "unknown-destination")
    batch = dapi.post("/v1/batches", json=[SMALL, SMALL | {"output": "storage://nope/"}])
    assert assert_problem(batch, 422, "unknown-destination")["index"] == 1


def test_a_run_with_output_writes_its_pngs_to_the_tenants_bucket_and_reports_where(dstack, dapi):
    bucket = new_bucket(dstack)
    assert dapi.post("/v1/destinations", json=registration(dstack, bucket)).status_code == 201
    submitted = dapi.post("/v1/generations", json=SMALL | {"num_images": 2, "output": f"storage://{bucket}/spring/launch/"})
    assert submitted.status_code == 202, submitted.text
    run = wait_for_run(dapi, submitted.json()["run_id"])
    assert run["status"] == "completed", run["error"]
    assert run["output"] == f"storage://{bucket}/spring/launch/" and run["image_url"] is None
    s3 = dstack.s3()
    for index, image in enumerate(run["images"]):
        key = f"renders/spring/launch/{run['run_id']}/{index}.png"
        assert (image["object_key"], image["object_bucket"], image["object_uri"]) == (key, bucket, f"s3://{bucket}/{key}")
        assert image["url"] is None and image["asset_id"] is None
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(data) == image["bytes"] and decode(data).size == (64, 64)
    # Not kept in our bucket as well (Claid: ours only when output is not defined).
    ours = s3.list_objects_v2(Bucket=dstack.env["RENDERQ_S3_BUCKET"], Prefix=run["run_id"])
    assert ours.get("KeyCount") == 0
    # An image operation takes the same option.
    upscale = dapi.post("/v1/upscale", json={"image": data_url(noise(32, 32)), "mode": "fast", "upscale_factor": 2, "output": f"storage://{bucket}/"})
    run = wait_for_run(dapi, upscale.json()["run_id"])
    key = f"renders/{run['run_id']}/0.png"
    assert run["status"] == "completed" and run["images"][0]["object_key"] == key
    assert decode(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).size == (64, 64)


def test_a_destination_that_refuses_the_write_fails_the_run_and_nothing_falls_back(dstack, dapi):
    bucket = new_bucket(dstack)
    assert dapi.post("/v1/destinations", json=registration(dstack, bucket)).status_code == 201
    # The tenant revokes the key after registering it (SeaweedFS would recreate a deleted bucket).
    revoked = Vault(SECRETS_KEY).seal(S3_ACCESS_KEY, "revoked-since")
    dstack.redis().hset(f"{RECORD_PREFIX}tests:{bucket}", "credentials", revoked)
    run = wait_for_run(dapi, dapi.post("/v1/generations", json=SMALL | {"output": f"storage://{bucket}/"}).json()["run_id"])
    assert run["status"] == "failed" and run["images"] == []
    assert run["error"]["type"] == "/problems/destination-failed" and bucket in run["error"]["detail"]
    assert "SignatureDoesNotMatch" in run["error"]["detail"] or "AccessDenied" in run["error"]["detail"]
    ours = dstack.s3().list_objects_v2(Bucket=dstack.env["RENDERQ_S3_BUCKET"], Prefix=run["run_id"])
    assert ours.get("KeyCount") == 0
    # A retry names the same output: refused at once once the destination is deleted.
    assert dapi.delete(f"/v1/destinations/{bucket}").status_code == 204
    assert_problem(dapi.post(f"/v1/generations/{run['run_id']}/retry"), 422, "unknown-destination")


def test_private_endpoints_are_refused_and_no_secrets_key_means_no_destinations(stack, api):
    """The session stack: neither RENDERQ_DESTINATION_ALLOW_PRIVATE nor RENDERQ_SECRETS_KEY."""
    body = registration(stack, "private-one")
    problem = assert_problem(api.post("/v1/destinations", json=body), 422, "unsafe-destination-endpoint")
    assert "not a public address" in problem["detail"]
    for endpoint in ("http://169.254.169.254", "http://10.0.0.8:9000", "file:///etc/passwd", "http://user:pw@example.com"):
        assert_problem(api.post("/v1/destinations", json=body | {"endpoint_url": endpoint}), 422, "unsafe-destination-endpoint")
    public = body | {"endpoint_url": "http://93.184.215.14"}  # a public literal: no DNS, no request made
    assert "RENDERQ_SECRETS_KEY" in assert_problem(api.post("/v1/destinations", json=public), 503, "destinations-unavailable")["detail"]
