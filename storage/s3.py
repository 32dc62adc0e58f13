"""Image objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, R2, …)."""

from __future__ import annotations

import boto3
import urllib3
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import percent_encode

from .image_store import StorageUnavailable
from core.settings import Settings

LIFECYCLE_RULE_ID = "renderq-expire-after-1-day"


def make_s3_client(
    endpoint: str | None,
    region: str,
    access_key: str | None,
    secret_key: str | None,
    *,
    max_attempts: int,
    addressing_style: str = "path",
    connect_timeout: float = 3,
    read_timeout: float = 10,
):
    """The one way renderq makes an S3 client: our own bucket's and tenants' destinations alike."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # botocore's standard mode retries connection errors, 5xx and throttling
            # with exponential backoff and jitter: an S3 blip costs seconds, not a run.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            # No CRC32 trailer on uploads (aws-chunked encoding) unless an operation
            # requires one: ~0.8 ms less per PNG put, and older S3-compatible stores
            # reject the trailer anyway. Signature v4 still covers the payload.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class S3ImageStore:
    """Writes through the internal endpoint; signs URLs for the public one.

    Two clients because a presigned URL's signature covers the host: a URL signed for the
    in-cluster endpoint (http://seaweedfs:8333) would not verify when fetched from outside.
    """

    def __init__(self, client, public_client, bucket: str) -> None:
        self.client = client
        self.public_client = public_client
        self.bucket = bucket
        config = client.meta.config
        self._attempts = (config.retries or {}).get("total_max_attempts", 1)
        # The image PUTs' own connections and retries (`put`): what botocore's standard mode
        # retries (connection and read errors, 5xx, throttling), with exponential backoff.
        self._pool = urllib3.PoolManager(
            maxsize=4, timeout=urllib3.Timeout(connect=config.connect_timeout, read=config.read_timeout),
            retries=urllib3.Retry(total=self._attempts - 1, backoff_factor=0.2, backoff_jitter=0.1, raise_on_status=False,
                                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods={"PUT"}),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3ImageStore":
        def client(endpoint: str | None):
            return make_s3_client(
                endpoint,
                settings.s3_region,
                settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
                settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
                max_attempts=settings.s3_max_attempts,
            )

        internal = client(settings.s3_endpoint)
        public = client(settings.s3_public_endpoint) if settings.s3_public_endpoint else internal
        return cls(internal, public, settings.s3_bucket)

    def prepare(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:  # another process created it first
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        # Deletion is coarse (AWS rounds to the next midnight UTC); the 24 h promise is kept by
        # URL expiry, this rule only makes sure storage does not grow forever.
        self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": LIFECYCLE_RULE_ID,
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "Expiration": {"Days": 1},
                    }
                ]
            },
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """The request `put_object` sends, signed by botocore's own SigV4 signer (as `signed_url`)
        and sent on this store's urllib3 pool with urllib3's retries: 0.4 ms of CPU per image
        against 1.3 ms through put_object's per-call event machinery, on the path that stores
        every image (and its thumbnail)."""
        url = f"{self.client.meta.endpoint_url}/{self.bucket}/{percent_encode(key, safe='/~')}"
        request = AWSRequest(method="PUT", url=url, data=data, headers={"Content-Type": content_type})
        credentials = self.client._request_signer._credentials.get_frozen_credentials()
        S3SigV4Auth(credentials, "s3", self.client.meta.region_name).add_auth(request)
        try:
            response = self._pool.request("PUT", url, body=data, headers=dict(request.headers.items()))
        except urllib3.exceptions.HTTPError as exc:
            raise StorageUnavailable(f"could not write {key} to bucket {self.bucket} in {self._attempts} tries: {exc}") from exc
        if response.status != 200:
            raise StorageUnavailable(f"could not write {key} to bucket {self.bucket} in {self._attempts} tries: "
                                     f"HTTP {response.status} {response.data[:200]!r}")

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise KeyError(key) from exc
            raise

    def signed_url(self, key: str, expires_in: int) -> str:
        """The URL `generate_presigned_url("get_object")` gives, byte for byte, signed by
        botocore's own SigV4 query signer but without the client's per-call endpoint-ruleset
        resolution, which made signing ~4× slower than the rest of a status read. Valid
        because addressing is path-style on a fixed endpoint (see `from_settings`)."""
        client = self.public_client
        url = f"{client.meta.endpoint_url}/{self.bucket}/{percent_encode(key, safe='/~')}"
        request = AWSRequest(method="GET", url=url)
        credentials = client._request_signer._credentials.get_frozen_credentials()
        S3SigV4QueryAuth(credentials, "s3", client.meta.region_name, expires=expires_in).add_auth(request)
        return request.url

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)
