"""The orchestrator's handler tables: which message goes to which handler. Read this first.

The saga coordinator (`sagas.coordinator`) takes every command that starts a registered saga (its definition in
`sagas/definitions/`, registered by importing it in `bootstrap`), `saga.start`, and the step replies: the generic
`saga.step.succeeded` / `saga.step.failed` and the domain events below, which participants answer steps with.
Every other handler is `handler(message, envelope, uow, store)`, the `SagaStore` last; `bootstrap` binds it.
"""

from sagas.definitions import backup_create, backup_restore, coalesce_chain, migrate_volume, revert_vm, snapshot_vm
from sagas.ports import SagaStore
from schemas import Event, Message
from schemas.sagas import SagaEnded
from services.orchestrator import outcomes
from services.runtime.handlers import ContextHandler

# Every domain event a participant of a registered saga may answer a step with (the coordinator's queue binds them).
SAGA_REPLIES: tuple[type[Event], ...] = tuple(
    dict.fromkeys(
        (
            *revert_vm.REPLY_TYPES,
            *snapshot_vm.REPLY_TYPES,
            *coalesce_chain.REPLY_TYPES,
            *backup_create.REPLY_TYPES,
            *backup_restore.REPLY_TYPES,
            *migrate_volume.REPLY_TYPES,
        )
    )
)

# The orchestrator takes its commands through the saga coordinator (above).
COMMAND_HANDLERS: dict[type[Message], ContextHandler[SagaStore]] = {}

EVENT_HANDLERS: dict[type[Message], ContextHandler[SagaStore]] = {
    SagaEnded: outcomes.announce_outcome,
}
