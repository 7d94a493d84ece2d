"""`S3BlobStore`: the blob store on S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph RGW), via aiobotocore.

botocore's and aiohttp's exceptions stop here: each call translates them into `schemas.errors` classes, and no
message ever carries a credential. Every request (botocore's own retries included) has a deadline,
`request_timeout_seconds`: a stalled endpoint fails the call with `DeadlineExceeded` instead of holding it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from plugins.chunked.ports import BlobInfo
from plugins.chunked.settings import DEFAULT_REQUEST_TIMEOUT_SECONDS
from plugins.sdk.deadlines import within
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, StrataError, Transient

if TYPE_CHECKING:  # the stubs are a development dependency only
    from types_aiobotocore_s3 import S3Client

_MISSING_KEY_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"})
_BUSY_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500"})
T = TypeVar("T")


class S3BlobStore:
    """Keys live under `prefix` in one bucket. A PUT is atomic in S3, so a reader never sees half an object.

    The client is made on first use and kept; call `close()` (or use `async with`) when done.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        prefix: str = "",
        max_connections: int = 16,
        max_attempts: int = 3,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._access_key = access_key
        self._secret_key = secret_key
        self._max_connections = max_connections
        self._max_attempts = max_attempts  # botocore's own retries of throttling and connection errors
        self._request_timeout = request_timeout_seconds
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def __aenter__(self) -> Self:
        await self._s3()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client's connections (a later call opens a new client)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _s3(self) -> "S3Client":
        async with self._opening:
            if self._client is None:
                config = AioConfig(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": self._max_attempts, "mode": "standard"},
                    connect_timeout=min(10.0, self._request_timeout),
                    read_timeout=self._request_timeout,
                    max_pool_connections=self._max_connections,
                )
                stack = contextlib.AsyncExitStack()
                try:
                    self._client = await stack.enter_async_context(
                        get_session().create_client(
                            "s3",
                            endpoint_url=self.endpoint_url,
                            region_name=self.region,
                            aws_access_key_id=self._access_key,
                            aws_secret_access_key=self._secret_key,
                            config=config,
                        )
                    )
                except (BotoCoreError, ValueError) as error:
                    raise InvalidArgument(f"cannot use S3 endpoint {self.endpoint_url}: {error}") from None
                self._stack = stack
            return self._client

    async def _within(self, call: Awaitable[T], what: str) -> T:
        """One request, retries included, within the request deadline (`DeadlineExceeded` past it)."""
        return await within(self._request_timeout, call, f"{what} in bucket {self.bucket} at {self.endpoint_url}")

    def _translate(self, error: Exception, what: str) -> StrataError:
        """The project's error for a driver error, with the bucket named and no credential in it."""
        where = f"{what} in bucket {self.bucket} at {self.endpoint_url}"
        if isinstance(error, ClientError):
            return self._translate_reply(error, where)
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return InvalidArgument(f"{where}: credentials are missing", field="access_key")
        if isinstance(error, ParamValidationError):
            return InvalidArgument(f"{where}: {error}")
        if isinstance(error, BotoConnectionError | HTTPClientError | OSError | TimeoutError):
            return Transient(f"{where}: cannot reach the storage ({type(error).__name__})")
        return Transient(f"{where}: {type(error).__name__}")

    @staticmethod
    def _translate_reply(error: ClientError, where: str) -> StrataError:
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            return FailedPrecondition(f"{where}: the bucket does not exist", field="bucket")
        if code in _MISSING_KEY_CODES:
            return NotFound(f"{where}: no such object")
        if code in _DENIED_CODES:
            return FailedPrecondition(f"{where}: access denied ({code}); check the access and secret keys")
        if code in _BUSY_CODES or status >= 500:
            return Transient(f"{where}: the storage is busy or failing ({code or status})")
        return FailedPrecondition(f"{where}: {code or status}: {details.get('Message', '')}")

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (for a fresh store; a bucket that is there is left as it is)."""
        s3 = await self._s3()
        try:
            await self._within(s3.head_bucket(Bucket=self.bucket), "checking the bucket")
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise self._translate(error, "checking the bucket") from None
        except (BotoCoreError, OSError, TimeoutError) as error:
            raise self._translate(error, "checking the bucket") from None
        else:
            return
        try:
            await self._within(s3.create_bucket(Bucket=self.bucket), "creating the bucket")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._translate(error, "creating the bucket") from None
        except (BotoCoreError, OSError, TimeoutError) as error:
            raise self._translate(error, "creating the bucket") from None

    async def put(self, key: str, data: bytes) -> None:
        """PUT the object (atomic in S3: readers see the old object or the new one)."""
        s3 = await self._s3()
        try:
            await self._within(s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data), f"writing {key}")
        except (BotoCoreError, ClientError, OSError, TimeoutError) as error:
            raise self._translate(error, f"writing {key}") from None

    async def get(self, key: str) -> bytes:
        """GET the whole object; `NotFound` if there is none."""
        s3 = await self._s3()

        async def read() -> bytes:
            response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            async with response["Body"] as body:
                return await body.read()

        try:
            return await self._within(read(), f"reading {key}")
        except (BotoCoreError, ClientError, OSError, TimeoutError) as error:
            raise self._translate(error, f"reading {key}") from None

    async def exists(self, key: str) -> bool:
        """HEAD the object."""
        s3 = await self._s3()
        try:
            await self._within(s3.head_object(Bucket=self.bucket, Key=self.prefix + key), f"checking {key}")
        except (BotoCoreError, ClientError, OSError, TimeoutError) as error:
            translated = self._translate(error, f"checking {key}")
            if isinstance(translated, NotFound):
                return False
            raise translated from None
        return True

    async def delete(self, key: str) -> None:
        """DELETE the object (S3 answers success for a missing key too)."""
        s3 = await self._s3()
        try:
            await self._within(s3.delete_object(Bucket=self.bucket, Key=self.prefix + key), f"deleting {key}")
        except (BotoCoreError, ClientError, OSError, TimeoutError) as error:
            translated = self._translate(error, f"deleting {key}")
            if not isinstance(translated, NotFound):
                raise translated from None

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Page through ListObjectsV2 under `prefix`."""
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        pages = aiter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        try:
            while (page := await self._within(anext(pages, None), f"listing {prefix}")) is not None:
                for item in page.get("Contents", []):
                    yield BlobInfo(
                        key=item["Key"][len(self.prefix) :],
                        size=item["Size"],
                        modified=item["LastModified"].astimezone(UTC),
                    )
        except (BotoCoreError, ClientError, OSError, TimeoutError) as error:
            raise self._translate(error, f"listing {prefix}") from None
