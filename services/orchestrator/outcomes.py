"""When a saga ends, announce the operation's outcome in its own terms (`vm.reverted`, `vm.revert.failed`).

The saga engine says `saga.ended` for every saga; users and the CLI wait for the domain's event instead.
"""

from collections.abc import Callable

from bus.ports import UnitOfWork
from sagas.definitions.revert_vm import SAGA_NAME as REVERT_VM
from sagas.ports import SagaStore
from sagas.records import SagaInstance, SagaStatus
from schemas import Envelope, ErrorInfo, Event, registry
from schemas.sagas import SagaEnded
from schemas.snapshot import RevertVmToSnapshot, VmRevertFailed

PRODUCER = "orchestrator"


def revert_vm_outcome(instance: SagaInstance) -> Event:
    """`vm.reverted` (the saga's result) or `vm.revert.failed` with the saga's reason."""
    if instance.status is SagaStatus.COMPLETED and instance.result is not None:
        result = instance.result.decode(registry)
        assert isinstance(result, Event)  # the revert saga returns VmReverted
        return result
    command = instance.input.decode(registry)
    assert isinstance(command, RevertVmToSnapshot)
    compensated = instance.status is SagaStatus.COMPENSATED
    why = instance.error or instance.status.value
    return VmRevertFailed(
        vm_id=command.vm_id,
        vm_snapshot_id=command.vm_snapshot_id,
        error=ErrorInfo(
            code="ABORTED" if compensated else "FAILED_PRECONDITION",
            error_class=f"Saga{instance.status.value.title()}",
            message=(
                f"the revert was undone: volumes and power state as before ({why})"
                if compensated
                else f"the revert saga {instance.saga_id} ended {instance.status.value}: {why}"
            ),
        ),
    )


OUTCOMES: dict[str, Callable[[SagaInstance], Event]] = {REVERT_VM: revert_vm_outcome}


class SagaOutcomes:
    """The handler of `saga.ended`: reads the instance and publishes its operation's outcome."""

    def __init__(self, store: SagaStore) -> None:
        self.store = store

    async def on_saga_ended(self, event: SagaEnded, envelope: Envelope, uow: UnitOfWork) -> None:
        """Publish the outcome of a saga this orchestrator knows how to describe."""
        describe = OUTCOMES.get(event.name)
        if describe is None:
            return
        async with self.store.session(uow) as session:
            instance = await session.get_instance(event.saga_id)
        if instance is None:
            return
        uow.emit(
            Envelope.wrap(
                describe(instance), cause=envelope, correlation_id=instance.correlation_id, producer=PRODUCER
            ).model_copy(update={"saga_id": instance.saga_id, "step": None})
        )
