"""An image store on S3 (SeaweedFS) reached through a proxy that can hold a transfer in its middle: told to pass
`budget` more bytes, it then forwards nothing (the reader waits for bytes that never come), so that a daemon reading
a template from the store has read part of it, reported that progress, and is still copying when the test kills it.

Each store gets a bucket of its own, read one chunk at a time (`concurrency=1`): the bytes that pass are whole chunks
from the first, and the progress they make is reported.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from tests.e2e.image_cloud import ImageCloud
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed
from tests.stall_proxy import StallingProxy


class HoldingProxy(StallingProxy):
    """A `StallingProxy` that stalls by itself once `budget` more bytes went through (None: no limit)."""

    budget: int | None = None

    def spend(self, size: int) -> None:
        if self.budget is not None:
            self.budget -= size
            if self.budget < 0:
                self.stalled = True

    def release(self) -> None:
        """Forward everything again (the connections it held are the dead reader's: they are closed)."""
        self.budget = None
        self.stalled = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._pipe(cast(asyncio.StreamReader, _Counted(reader, self)), writer)


class _Counted:
    """A stream reader whose reads are counted against the proxy's budget."""

    def __init__(self, reader: asyncio.StreamReader, proxy: HoldingProxy) -> None:
        self.reader = reader
        self.proxy = proxy

    async def read(self, size: int) -> bytes:
        data = await self.reader.read(size)
        self.proxy.spend(len(data))
        return data


@asynccontextmanager
async def s3_store(cloud: ImageCloud, name: str, *, zone: str = "default") -> AsyncIterator[HoldingProxy]:
    """`strata image-store add NAME --plugin s3` on a bucket of its own, its endpoint the proxy yielded; the bucket
    is removed at the end."""
    seaweed: SeaweedS3 = await asyncio.to_thread(shared_seaweed)
    bucket = f"img-{uuid.uuid4().hex[:12]}"
    async with HoldingProxy(seaweed.endpoint_url) as proxy:
        try:
            await cloud.strata(
                "image-store",
                "add",
                name,
                "--plugin",
                "s3",
                "--zone",
                zone,
                *("-c", f"endpoint={proxy.url}", "-c", f"region={seaweed.region}", "-c", f"bucket={bucket}"),
                *("-c", f"access_key={seaweed.access_key}", "-c", f"secret_key={seaweed.secret_key}"),
                *("-c", "create_bucket=true", "-c", "concurrency=1"),
            )
            yield proxy
        finally:
            await asyncio.to_thread(remove_bucket, seaweed, bucket)
