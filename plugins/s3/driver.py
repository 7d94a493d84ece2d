"""Opening an s3 driver: a `ChunkedDriver` on an `S3BlobStore` for the configured bucket and prefix."""

from plugins.chunked.codec import Compression
from plugins.chunked.driver import ChunkedDriver
from plugins.chunked.s3 import S3BlobStore
from plugins.chunked.settings import KIB, ChunkedSettings
from plugins.s3.config import S3Config
from plugins.sdk.config import PluginConfig, reveal
from plugins.sdk.errors import InvalidArgument


def open_driver(config: PluginConfig) -> ChunkedDriver:
    """The driver for one store (the client connects on the first call)."""
    if not isinstance(config, S3Config):
        raise InvalidArgument(f"s3 needs an S3Config, not {type(config).__name__}")
    store = S3BlobStore(
        endpoint_url=config.endpoint,
        region=config.region,
        bucket=config.bucket,
        access_key=config.access_key,
        secret_key=reveal(config.secret_key),
        prefix=config.prefix,
        max_connections=config.concurrency,
        request_timeout_seconds=config.request_timeout_seconds,
    )
    return ChunkedDriver(
        plugin_name="s3",
        store=store,
        settings=ChunkedSettings(
            chunk_size=config.chunk_size_kib * KIB,
            compression=Compression(config.compression),
            concurrency=config.concurrency,
        ),
        ready=store.ensure_bucket if config.create_bucket else None,
        on_close=store.close,
    )
