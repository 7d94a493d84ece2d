"""What the storage service's handlers work with, and how they emit and answer."""

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.registry import Registry
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Event, Message
from schemas.errors import ErrorInfo, StrataError
from schemas.sagas import StepFailed
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
    """Emit `message` as a consequence of `cause`: same correlation, caused by it, but without the saga id, step
    and fencing token of a saga's command, so that only an explicit `answer` is taken as the step's reply (and an
    agent's answer to a command sent here comes back to this service rather than to the saga)."""
    envelope = Envelope.wrap(message, correlation_id=cause.correlation_id, producer=storage.producer)
    uow.emit(envelope.model_copy(update={"causation_id": cause.message_id}))


@dataclass(frozen=True)
class SagaRequest:
    """A saga's step that this service answers later, once an agent has done the work (kept with the volume)."""

    message_id: UUID
    correlation_id: UUID
    saga_id: UUID
    step: int | None
    fencing_token: int | None

    @classmethod
    def of(cls, command: Envelope) -> "SagaRequest | None":
        """The saga step that sent `command`, or None if no saga did."""
        if command.saga_id is None:
            return None
        return cls(command.message_id, command.correlation_id, command.saga_id, command.step, command.fencing_token)

    def to_json(self) -> str:
        """For the volume's `saga_request` column."""
        return json.dumps(
            {
                "message_id": str(self.message_id),
                "correlation_id": str(self.correlation_id),
                "saga_id": str(self.saga_id),
                "step": self.step,
                "fencing_token": self.fencing_token,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> "SagaRequest | None":
        """Read the column back (None when no saga waits)."""
        if text is None:
            return None
        data: dict[str, Any] = json.loads(text)  # the object to_json wrote
        return cls(
            UUID(data["message_id"]),
            UUID(data["correlation_id"]),
            UUID(data["saga_id"]),
            data.get("step"),
            data.get("fencing_token"),
        )

    def reply(self, uow: UnitOfWork, payload: Event, storage: Storage) -> None:
        """Answer the step with `payload` (a domain event or StepFailed)."""
        envelope = Envelope.wrap(
            payload,
            correlation_id=self.correlation_id,
            saga_id=self.saga_id,
            step=self.step,
            fencing_token=self.fencing_token,
            producer=storage.producer,
        )
        uow.emit(envelope.model_copy(update={"causation_id": self.message_id}))


def conclude(
    uow: UnitOfWork, cause: Envelope, waiting: str | None, outcome: Event, storage: Storage, *, failed: bool = False
) -> None:
    """Publish an operation's outcome, and answer the saga step that asked for it, if one did."""
    emit(uow, cause, outcome, storage)
    request = SagaRequest.from_json(waiting)
    if request is not None:
        error = getattr(outcome, "error", None)
        if failed and isinstance(error, ErrorInfo):
            request.reply(uow, StepFailed(error=error), storage)
        else:
            request.reply(uow, outcome, storage)


def answer(uow: UnitOfWork, command: Envelope, outcome: Event, storage: Storage) -> None:
    """Answer a command with its outcome: a saga's step gets it as its reply, anyone else as an event."""
    if command.saga_id is not None:
        reply_success(uow, command, outcome, producer=storage.producer)
    else:
        emit(uow, command, outcome, storage)


def refuse(uow: UnitOfWork, command: Envelope, error: StrataError, failed: Event, storage: Storage) -> None:
    """Answer a refused command with the `...Failed` event, and StepFailed too when a saga's step sent it."""
    emit(uow, command, failed, storage)
    if command.saga_id is not None:
        reply_failure(uow, command, error, producer=storage.producer)


def saga_request_of(command: Envelope) -> str | None:
    """What to keep with a volume so that the saga step that sent `command` gets its answer later (JSON)."""
    request = SagaRequest.of(command)
    return request.to_json() if request is not None else None


def volume_moved(volume: VolumeRow, new_state: VolumeState, version: int) -> VolumeStateChanged:
    """The event of a volume's state change, which left the volume at `version`."""
    return VolumeStateChanged(
        volume_id=volume.volume_id, old_state=volume.state, new_state=new_state, entity_version=version
    )


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
