"""What every route works with: the bus (as the CLI's client), the keys, the operations, the plugins."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bus.ports import Transport
from bus.postgres.pool import Pool
from plugins.registry import Registry
from services.api.keys import ApiKey, KeyStore
from services.api.operations import Operations
from services.api.settings import ApiSettings
from services.cli.sending import Client


@dataclass
class ApiContext:
    """The API daemon's adapters, built once by its bootstrap."""

    transport: Transport
    pool: Pool
    keys: KeyStore
    operations: Operations
    plugins: Registry
    settings: ApiSettings
    saga_schema: str = "sagas"

    def asking(self, key: ApiKey | None = None) -> Client:
        """A client for queries only (request/reply needs no watch on the events)."""
        return Client(self.transport, owns_transport=False, producer=key.actor if key else "api")

    @asynccontextmanager
    async def sending(self, key: ApiKey) -> AsyncIterator[Client]:
        """A client that sends commands as `key` (the journal records it as the producer) and watches their
        outcome, as `strata` does."""
        async with Client(self.transport, owns_transport=False, producer=key.actor) as client:
            yield client
