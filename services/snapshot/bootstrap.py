"""The snapshot daemon, declared (`DAEMON`): the only place that builds the snapshot service's adapters.

`build_snapshot` wires it on a given transport and units of work (tests run it so); the runner builds it from the
process's wiring for `strata run snapshot`, `strata up` and the demo.
"""

from dataclasses import dataclass
from typing import Any

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from plugins.registry import Registry, load_plugins
from plugins.sdk.capabilities import Capability
from schemas.errors import NotFound
from services.runtime.daemon import Daemon, Queue, Service, Wiring
from services.runtime.handlers import bind_context
from services.runtime.migrations import migrate_service
from services.snapshot.catch_up import CatchUp
from services.snapshot.deps import SnapshotDeps
from services.snapshot.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.snapshot.scheduler import PolicyScheduler

CONSUMER = "snapshot"
SCHEMA = "snapshot"
HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}
SCHEDULER_POLL = 1.0  # seconds between looks for due policies when none was due


@dataclass(frozen=True)
class DeltaSupport:
    """Answers `supports_delta(plugin_name)` from the installed plugins' manifests (an unknown plugin: fulls only)."""

    plugins: Registry

    def __call__(self, plugin: str) -> bool:
        try:
            return Capability.DELTA_SNAPSHOT in self.plugins.get(plugin).manifest.capabilities
        except NotFound:
            return False


def build_snapshot(
    transport: Transport,
    units: UnitOfWorkFactory,
    *,
    deps: SnapshotDeps | None = None,
    scheduler_poll: float = SCHEDULER_POLL,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> Service:
    """Wire the service on `transport` and `units` (PostgreSQL units of work: it keeps its state there): its
    consumer on queue `<ns>.snapshot`, its policy scheduler, and its catch-up with the storage service."""
    deps = deps or SnapshotDeps(supports_delta=DeltaSupport(load_plugins()))
    consumer = Consumer(
        transport, units, name=CONSUMER, handlers=bind_context(HANDLERS, deps), prefetch=prefetch, queue_kind=queue_kind
    )
    return Service([consumer, PolicyScheduler(units, deps, poll=scheduler_poll), CatchUp(transport, units)])


async def migrate_snapshot(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the snapshot service's migrations not yet applied (schema `snapshot`); return the versions applied."""
    return await migrate_service(connection, SCHEMA, "services.snapshot.migrations")


def build(wiring: Wiring) -> Service:
    """The snapshot service on the process's wiring (`snapshot.delta.max` from STRATA_SNAPSHOT_DELTA_MAX)."""
    deps = SnapshotDeps(
        delta_max=wiring.settings.runtime.snapshot_delta_max, supports_delta=DeltaSupport(wiring.plugins)
    )
    return build_snapshot(wiring.transport, wiring.units, deps=deps, queue_kind=wiring.settings.bus.queue_kind)


DAEMON = Daemon(
    name="snapshot",
    summary="volume and VM snapshots, their chains, snapshot policies and their scheduler",
    build=build,
    migrations=(migrate_snapshot,),
    queues=(Queue(CONSUMER, tuple(HANDLERS)),),
)
