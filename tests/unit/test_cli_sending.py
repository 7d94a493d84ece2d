"""The CLI's client on the in-memory bus: outcomes by correlation id, failures as the service's error, no service."""

import uuid
from collections.abc import AsyncIterator

import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import UnitOfWork
from bus.runtime import Consumer
from bus.settings import BusSettings
from schemas import Envelope, ErrorInfo
from schemas.errors import FailedPrecondition
from schemas.storage import DisablePool, PoolOperationFailed, PoolState, PoolStateChanged
from services.cli.running import ServiceNotRunning
from services.cli.sending import Client, CommandFailed, NoAnswer

pytestmark = pytest.mark.unit


async def _answer(command: DisablePool, envelope: Envelope, uow: UnitOfWork) -> None:
    # A stand-in storage service: an unrelated event first (another correlation), then the answer.
    uow.emit(Envelope.wrap(PoolStateChanged(pool_id=command.pool_id, old_state=PoolState.UP, new_state=PoolState.UP)))
    if command.pool_id.int % 2:
        failure = ErrorInfo(code="FAILED_PRECONDITION", error_class="FailedPrecondition", message="pool is busy")
        uow.emit(
            Envelope.wrap(
                PoolOperationFailed(pool_id=command.pool_id, operation="pool.disable", error=failure), cause=envelope
            )
        )
        return
    changed = PoolStateChanged(pool_id=command.pool_id, old_state=PoolState.UP, new_state=PoolState.DISABLED)
    uow.emit(Envelope.wrap(changed, cause=envelope))


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    transport = MemoryTransport(BusSettings(namespace=f"t{uuid.uuid4().hex[:8]}"))
    await transport.start()
    consumer = Consumer(
        transport, MemoryUnitOfWorkFactory(Bus(transport)), name="storage", handlers={DisablePool: _answer}
    )
    await consumer.start()
    async with Client(transport, owns_transport=False) as connected:
        yield connected
    await consumer.stop()
    await transport.close()


async def test_the_outcome_is_the_event_of_the_commands_correlation(client: Client) -> None:
    pool_id = uuid.UUID(int=2)
    outcome = await client.send(DisablePool(pool_id=pool_id), (PoolStateChanged,), (PoolOperationFailed,), timeout=5)
    assert isinstance(outcome, PoolStateChanged)
    assert outcome.new_state is PoolState.DISABLED


async def test_a_failure_event_raises_the_services_error(client: Client) -> None:
    with pytest.raises(CommandFailed) as raised:
        await client.send(DisablePool(pool_id=uuid.UUID(int=3)), (PoolStateChanged,), (PoolOperationFailed,), timeout=5)
    assert raised.value.message == "pool is busy"
    assert raised.value.error.error_class == "FailedPrecondition"


async def test_a_command_no_service_takes_says_what_to_start(client: Client) -> None:
    from schemas.storage import EnablePool

    with pytest.raises(FailedPrecondition, match="strata run storage"):
        await client.send(EnablePool(pool_id=uuid.uuid4()), (PoolStateChanged,), (PoolOperationFailed,), timeout=5)


async def test_no_answer_in_time_is_a_transient_error(client: Client) -> None:
    envelope = Envelope.wrap(DisablePool(pool_id=uuid.UUID(int=4)))
    with pytest.raises(NoAnswer, match="strata run storage"):
        await client.outcome(envelope, (PoolStateChanged,), (PoolOperationFailed,), timeout=0.05)


async def test_a_command_whose_service_stopped_fails_at_once_naming_it() -> None:
    transport = MemoryTransport(BusSettings(namespace=f"t{uuid.uuid4().hex[:8]}"))
    await transport.start()
    consumer = Consumer(
        transport, MemoryUnitOfWorkFactory(Bus(transport)), name="storage", handlers={DisablePool: _answer}
    )
    await consumer.start()
    await consumer.stop()  # its queue stays behind, with nobody consuming it
    async with Client(transport, owns_transport=False) as client:
        with pytest.raises(ServiceNotRunning, match=r"the storage service is not running .*strata run storage"):
            # A timeout no test waits out: only the look at the queue can end this.
            await client.send(
                DisablePool(pool_id=uuid.uuid4()), (PoolStateChanged,), (PoolOperationFailed,), timeout=3600
            )
    await transport.close()


async def test_a_service_that_never_started_is_named_too(client: Client) -> None:
    from schemas.snapshot import CreateSnapshot, SnapshotCreated, SnapshotCreateFailed

    command = CreateSnapshot(snapshot_id=uuid.uuid4(), volume_id=uuid.uuid4(), name="s1")
    with pytest.raises(ServiceNotRunning, match=r"the snapshot service is not running .*never started"):
        await client.send(command, (SnapshotCreated,), (SnapshotCreateFailed,), timeout=3600)
