"""A deliberately changed revert-VM saga, for tests only: the same name and version as the installed one, but its
safety snapshots are named otherwise. `strata replay sandbox --sagas tests.replay.altered_revert` replays records
against it; the first divergent step is the first safety snapshot's."""

from typing import Any, cast

from sagas import SagaContext, saga
from sagas.definition import SagaRegistry
from sagas.definitions.revert_vm import SAGA_NAME, revert_vm_to_snapshot
from schemas import Command
from schemas.snapshot import CreateSnapshot, RevertVmToSnapshot, VmReverted

SAGAS = SagaRegistry()


class _Renaming:
    """The saga's context, except that a CreateSnapshot it sends gets another name."""

    def __init__(self, context: SagaContext) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:  # whatever the context offers, as it offers it
        return getattr(self._context, name)

    def step(self, command: Command, **options: Any) -> Any:  # the context's Operation
        if isinstance(command, CreateSnapshot):
            command = command.model_copy(update={"name": f"renamed-{command.name}"})
        return self._context.step(command, **options)


@saga(SAGA_NAME, version=1, into=SAGAS)
async def revert_vm_to_snapshot_renamed(ctx: SagaContext, cmd: RevertVmToSnapshot) -> VmReverted:
    """The installed revert, its safety snapshots renamed."""
    return await revert_vm_to_snapshot(cast(SagaContext, _Renaming(ctx)), cmd)
