"""The configuration of one S3 store, as an operator fills it in."""

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from plugins.chunked.settings import DEFAULT_REQUEST_TIMEOUT_SECONDS, KIB, MIB
from plugins.sdk.config import PluginConfig

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

DEFAULT_S3_CHUNK_SIZE = MIB
"""Why 1 MiB on object storage (32 KiB on a directory): every chunk is a request, billed and with a round trip of
its own, so a full backup of 1 GiB takes 1,024 PUTs rather than 32,768. The price is that an incremental backup of
scattered small changes writes more (about 2-3x what changed); lower `chunk_size_kib` where that matters more."""


class S3Config(PluginConfig):
    """Which bucket, how to sign in, and how chunks are cut."""

    endpoint: str = Field(
        description="URL of the S3 API, e.g. https://s3.eu-west-1.amazonaws.com or http://seaweed:8333.",
    )
    region: str = Field(default="us-east-1", min_length=1, description="Region used to sign requests.")
    bucket: str = Field(description="Bucket that holds the store; it must exist.")
    access_key: str = Field(min_length=1, description="Access key id.")
    secret_key: SecretStr = Field(description="Secret access key.")
    prefix: str = Field(default="strata", description="Key prefix of the store inside the bucket.")
    create_bucket: bool = Field(default=False, description="Create the bucket on first use if it does not exist.")
    chunk_size_kib: int = Field(
        default=DEFAULT_S3_CHUNK_SIZE // KIB,
        ge=4,
        le=65536,
        multiple_of=4,
        description="Chunk size in KiB (one object per chunk).",
    )
    compression: Literal["zstd", "zlib", "none"] = Field(default="zstd", description="Compression of chunks.")
    concurrency: int = Field(default=16, ge=1, le=128, description="Requests in flight at once.")
    request_timeout_seconds: float = Field(
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        gt=0,
        le=3600,
        description="Deadline of one request (its retries included): a stalled endpoint fails the call with "
        "DEADLINE_EXCEEDED past it.",
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError("must be 3-63 lowercase letters, digits, '.' or '-' (S3 bucket naming rules)")
        return value
