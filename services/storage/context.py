"""What the storage service's handlers work with, and how they emit and answer."""

from dataclasses import dataclass, field
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.registry import Registry
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Event, Message
from schemas.errors import StrataError
from schemas.storage import PoolScope, PoolState, VolumeState, VolumeStateChanged
from services.domain.allocator import CapacityThresholds
from services.storage.repository import PoolRow, VolumeRow

PRODUCER = "storage"


@dataclass(frozen=True)
class Storage:
    """The storage service's collaborators: the plugin registry (to validate pool configs) and the allocator's
    thresholds (CloudStack's settings)."""

    plugins: Registry
    thresholds: CapacityThresholds = field(default_factory=CapacityThresholds)
    producer: str = PRODUCER


def emit(uow: UnitOfWork, cause: Envelope, message: Message, storage: Storage) -> None:
    """Emit `message` as a consequence of `cause` (same correlation)."""
    uow.emit(Envelope.wrap(message, cause=cause, producer=storage.producer))


def emit_fresh(uow: UnitOfWork, cause: Envelope, message: Message, storage: Storage) -> None:
    """Emit a command of the service's own (to an agent): same correlation, but no saga id or step of the cause, so
    that the agent's answer comes back to this service rather than to a saga."""
    envelope = Envelope.wrap(message, correlation_id=cause.correlation_id, producer=storage.producer)
    uow.emit(envelope.model_copy(update={"causation_id": cause.message_id}))


def answer(uow: UnitOfWork, command: Envelope, outcome: Event, storage: Storage) -> None:
    """Answer a command with its outcome: a saga's step gets it as its reply, anyone else as an event."""
    if command.saga_id is not None:
        reply_success(uow, command, outcome, producer=storage.producer)
    else:
        emit(uow, command, outcome, storage)


def refuse(uow: UnitOfWork, command: Envelope, error: StrataError, failed: Event, storage: Storage) -> None:
    """Answer a refused command: a saga's step gets StepFailed, anyone else the `...Failed` event."""
    if command.saga_id is not None:
        reply_failure(uow, command, error, producer=storage.producer)
    else:
        emit(uow, command, failed, storage)


def volume_moved(volume: VolumeRow, new_state: VolumeState) -> VolumeStateChanged:
    """The event of a volume's state change."""
    return VolumeStateChanged(volume_id=volume.volume_id, old_state=volume.state, new_state=new_state)


def agent_route(pool: PoolRow) -> tuple[str | None, str | None]:
    """Where a pool's data-plane commands go, as (host, cluster_id): its host's agent (host scope), else any agent
    of its cluster."""
    if pool.scope is PoolScope.HOST:
        return pool.host, None
    return None, pool.cluster_id


def volume_resource(volume_id: UUID) -> str:
    """A volume's fencing resource (the sagas lock the same name)."""
    return f"volume:{volume_id}"


# Pool states in which the storage is being released or is out of use: no volume operation may start.
POOL_STATES_WITHOUT_OPERATIONS = frozenset(
    {
        PoolState.PREPARE_FOR_MAINTENANCE,
        PoolState.MAINTENANCE,
        PoolState.ERROR_IN_MAINTENANCE,
        PoolState.CANCEL_MAINTENANCE,
        PoolState.REMOVED,
        PoolState.INITIAL,
    }
)
