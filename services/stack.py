"""Every daemon in one process on a given transport and database: what the demo and in-process tests run.

The daemons are the declared ones (`services.daemons`), started by the one runner (`services.runtime.runner`) on
one database pool, one transport and one outbox relay, in their declared order.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from bus.ports import Transport
from bus.postgres import RelaySettings
from bus.postgres.pool import Pool
from plugins.registry import Registry
from sagas.postgres_store import PostgresSagaStore
from services.daemons import declared, deployed, together
from services.runtime.daemon import Service, Settings
from services.runtime.runner import Runner


@dataclass
class System:
    """The running daemons of one process and the adapters they share."""

    runner: Runner

    @classmethod
    async def start(
        cls,
        database_url: str,
        transport: Transport,
        *,
        settings: Settings,
        plugins: Registry | None = None,
        relay_poll: float = 0.2,
        only: Sequence[str] | None = None,
    ) -> "System":
        """Start the daemons `only` (default: the ones `strata up` runs) on `transport` (not started yet: it is started
        here and closed by `stop`); the agent's host and cluster come from the settings' `AgentSettings`."""
        runner = await Runner.start(
            [declared(name) for name in (together() if only is None else only)],
            database_url=database_url,
            transport=transport,
            settings=settings,
            plugins=plugins,
            relay=RelaySettings(poll_interval=relay_poll),
            topology=deployed(),
        )
        return cls(runner)

    @property
    def pool(self) -> Pool:
        """The database pool the daemons share."""
        return self.runner.pool

    @property
    def transport(self) -> Transport:
        """The transport the daemons share."""
        return self.runner.transport

    @property
    def services(self) -> list[tuple[str, Service]]:
        """The running daemons, by label (`agent@h1`), in start order."""
        return self.runner.services

    @property
    def store(self) -> PostgresSagaStore:
        """The saga store on the daemons' database (for a look at sagas)."""
        return PostgresSagaStore(self.runner.pool)

    async def stop(self) -> None:
        """Stop the daemons in reverse order, then the relay, the transport and the pool."""
        await self.runner.stop()
