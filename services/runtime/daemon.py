"""What a daemon is, declared once; `services.runtime.runner` starts any list of them the same way.

A daemon's `bootstrap` module declares one `Daemon` and `services/daemons.py` lists it:

    DAEMON = Daemon(
        name="storage",
        build=build,                                    # Wiring -> Service: consumers, tasks, health checks
        migrations=(migrate_storage,),                  # its own schema, after the bus's tables
        queues=(Queue("storage", tuple(HANDLERS)),),    # its queue and what binds to it (`strata topology apply`)
    )

The runner gives `build` a `Wiring` (the settings of the run, the transport, units of work, the database pool, the
installed plugins, the metrics registry) and starts what it returns; `strata run NAME`, `strata up`, the demo and
the e2e daemons all go through it.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from bus.ports import Binding, Transport, UnitOfWorkFactory
from bus.postgres.pool import Pool
from bus.runtime import Consumer
from bus.settings import BusSettings
from plugins.registry import Registry
from schemas import Command, Message
from services.runtime.health import HealthCheck, Refresh
from services.runtime.settings import RuntimeSettings

log = structlog.get_logger(__name__)
S = TypeVar("S", bound=BaseSettings)
Step = Callable[[], Awaitable[None]]
# An asyncpg connection outside any transaction (`Any`: the services' migrators take it untyped).
Migration = Callable[[Any], Awaitable[object]]


class Part(Protocol):
    """Something a daemon starts and stops: a consumer, a scheduler, a statistics collector, a saga coordinator."""

    async def start(self) -> None:
        """Start taking work."""

    async def stop(self) -> None:
        """Stop taking work; what is in flight finishes first."""


class Settings:
    """The settings of one run: each settings class as given, or read from the environment (`STRATA_*`) once."""

    def __init__(self, *given: BaseSettings) -> None:
        self._known: dict[type[BaseSettings], BaseSettings] = {type(settings): settings for settings in given}

    def get(self, kind: type[S]) -> S:
        """The settings of class `kind` (`AgentSettings`, a daemon's own class)."""
        if kind not in self._known:
            self._known[kind] = kind()
        found = self._known[kind]
        assert isinstance(found, kind)  # keyed by its own class above
        return found

    @property
    def runtime(self) -> RuntimeSettings:
        """What every daemon reads (database, health, logs, CloudStack's settings)."""
        return self.get(RuntimeSettings)

    @property
    def bus(self) -> BusSettings:
        """How the bus connects, retries and paces itself."""
        return self.get(BusSettings)


@dataclass(frozen=True)
class Wiring:
    """What the runner gives a daemon's `build`: the adapters of the process, built once and shared."""

    settings: Settings
    transport: Transport
    units: UnitOfWorkFactory
    pool: Pool
    plugins: Registry
    metrics: CollectorRegistry


@dataclass
class Service:
    """A built daemon: its parts (consumers first, then background tasks), started in order and stopped in reverse.

    Attributes:
        parts: What runs: consumers (a part that is a `Consumer` or has one as `.consumer` is watched by /healthz).
        on_stop: Run after every part stopped (close the drivers, the hypervisor connection).
        checks: Health checks of its own, besides the ones the runner adds for every daemon.
        metrics: What sets its gauges (on `Wiring.metrics`) before each `/metrics` answer: pools, sagas, ...
    """

    parts: Sequence[Part]
    on_stop: list[Step] = field(default_factory=list)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    metrics: list[Refresh] = field(default_factory=list)
    _started: list[Part] = field(default_factory=list, init=False, repr=False)

    @property
    def consumers(self) -> list[Consumer]:
        """The consumers among its parts (a saga coordinator's included)."""
        found: list[Consumer] = []
        for part in self.parts:
            consumer = part if isinstance(part, Consumer) else getattr(part, "consumer", None)
            if isinstance(consumer, Consumer):
                found.append(consumer)
        return found

    async def start(self) -> None:
        """Start every part in order; if one fails, stop the ones started and raise."""
        for part in self.parts:
            try:
                await part.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(part)

    async def stop(self) -> None:
        """Stop the started parts in reverse order, then run `on_stop`; one failing step does not stop the rest."""
        steps: list[tuple[str, Step]] = [(type(part).__name__, part.stop) for part in reversed(self._started)]
        steps += [(getattr(step, "__qualname__", "on_stop"), step) for step in self.on_stop]
        self._started.clear()
        for name, step in steps:
            try:
                await step()
            except Exception as error:  # one broken stop must not keep the others running
                log.error("a part did not stop cleanly", part=name, error_class=type(error).__name__)


@dataclass(frozen=True)
class Queue:
    """A daemon's queue `<ns>.<name>` and the message types its handler table takes (its bindings)."""

    name: str
    handles: tuple[type[Message], ...]

    def bindings(self) -> list[Binding]:
        """Commands bind on `commands`, everything else on `events`, each by its wire type (as `Consumer` does)."""
        return [
            Binding("commands" if issubclass(model, Command) else "events", model.message_type)
            for model in sorted(self.handles, key=lambda m: m.message_type)
        ]


def _no_check(settings: Settings) -> None:
    """Most daemons have nothing to check before connecting."""


@dataclass(frozen=True)
class Daemon:
    """One daemon, declared: what it is called, how it is built, its migrations and its queues.

    Attributes:
        name: `strata run NAME`.
        summary: One line for `strata run --help`.
        build: Builds its service on the process's wiring (not started).
        migrations: Its schemas' migrators, applied in order after the bus's tables (each idempotent).
        queues: Its shared queues and their bindings, declared by `strata topology apply` and by every daemon at
            start, so that a message published before it first runs waits in its queue. A queue of one host (an
            agent's) is declared by that daemon when it starts.
        check: Runs before anything connects (a deployment key file that cannot be read fails here, at once).
        label: Its name in logs, on the broker and in `strata up`'s list (`agent@h1`); `name` if not given.
    """

    name: str
    summary: str
    build: Callable[[Wiring], Service]
    migrations: Sequence[Migration] = ()
    queues: Sequence[Queue] = ()
    check: Callable[[Settings], None] = _no_check
    label: Callable[[Settings], str] | None = None

    def label_in(self, settings: Settings) -> str:
        """Its label with these settings."""
        return self.label(settings) if self.label is not None else self.name
