"""What every route works with: the bus (as the CLI's client), the keys, the operations, the plugins."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import monotonic

from bus.ports import Transport
from bus.postgres.pool import Pool
from plugins.registry import Registry
from schemas import Message
from services.api.keys import ApiKey, KeyStore
from services.api.operations import Operations
from services.api.settings import ApiSettings
from services.cli.running import owner_of, require_running
from services.cli.sending import Client


class Owners:
    """Which services were seen consuming, and until when that is trusted (`STRATA_API_OWNER_CHECK_SECONDS`): the
    CLI's check before each send (a passive queue declare on a channel of its own, three round trips to the broker)
    is made once per service per period instead of once per request. Only a positive answer is remembered."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}

    async def require(self, transport: Transport, message: Message) -> None:
        """ServiceNotRunning naming the service that takes `message`, if nothing consumes its queue."""
        owner = owner_of(message.message_type)
        if owner is None or self._until.get(owner.queue, 0.0) > monotonic():
            return
        await require_running(transport, [owner])
        if self.seconds > 0:
            self._until[owner.queue] = monotonic() + self.seconds


class ApiClient(Client):
    """The CLI's client, its check of the receiving service remembered for a while (`Owners`)."""

    def __init__(self, transport: Transport, owners: Owners, *, producer: str) -> None:
        super().__init__(transport, owns_transport=False, producer=producer)
        self.owners = owners

    async def require_owner(self, message: Message) -> None:
        """As the CLI's, at most once per service per `Owners.seconds`."""
        await self.owners.require(self.transport, message)


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
    owners: Owners = field(default_factory=lambda: Owners(0.0))

    def asking(self, key: ApiKey | None = None) -> Client:
        """A client for queries only (request/reply needs no watch on the events)."""
        return ApiClient(self.transport, self.owners, producer=key.actor if key else "api")

    @asynccontextmanager
    async def sending(self, key: ApiKey) -> AsyncIterator[Client]:
        """A client that sends commands as `key` (the journal records it as the producer) and watches their
        outcome, as `strata` does."""
        async with ApiClient(self.transport, self.owners, producer=key.actor) as client:
            yield client
