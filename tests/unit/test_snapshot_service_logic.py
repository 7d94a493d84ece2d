"""The snapshot service's pure parts: where agent commands go, whom answers reach, and policy runs' ids."""

from datetime import UTC, datetime
from typing import cast
from uuid import uuid4

import pytest

from bus.memory_uow import MemoryUnitOfWork
from bus.ports import has_deferred_writes
from schemas import Envelope
from schemas.errors import FailedPrecondition
from schemas.sagas import StepFailed
from schemas.snapshot import CreateSnapshot, SnapshotCreateFailed, SnapshotReverted
from schemas.storage import PoolAdded, PoolScope
from services.runtime.handlers import bind_context
from services.snapshot import read_model
from services.snapshot.bootstrap import HANDLERS
from services.snapshot.deps import SnapshotDeps
from services.snapshot.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.snapshot.repository import PoolRow
from services.snapshot.requests import Requester, answer, refuse, to_agent
from services.snapshot.scheduler import run_snapshot_id

pytestmark = pytest.mark.unit


def saga_command() -> Envelope:
    command = CreateSnapshot(snapshot_id=uuid4(), volume_id=uuid4(), name="s")
    return Envelope.wrap(command, saga_id=uuid4(), step=7, fencing_token=12, producer="orchestrator")


def test_a_host_scoped_pool_is_reached_through_its_host_and_a_cluster_pool_through_its_cluster() -> None:
    assert PoolRow(uuid4(), "qcow2fs", PoolScope.HOST, "c1", "h1").route() == {"host": "h1"}
    assert PoolRow(uuid4(), "qcow2fs", PoolScope.CLUSTER, "c1", None).route() == {"cluster_id": "c1"}
    with pytest.raises(FailedPrecondition, match="no host or cluster"):
        PoolRow(uuid4(), "s3", PoolScope.ZONE, None, None).route()


def test_a_requester_survives_its_round_trip_through_json() -> None:
    requester = Requester.of(saga_command())
    assert Requester.from_json(requester.to_json()) == requester
    assert requester.from_saga


def test_the_answer_to_a_saga_step_carries_its_saga_step_and_cause() -> None:
    command = saga_command()
    uow = MemoryUnitOfWork()
    event = SnapshotReverted(snapshot_id=uuid4(), volume_id=uuid4())
    answer(uow, Requester.of(command), event)
    [sent] = uow.emitted
    assert (sent.saga_id, sent.step, sent.causation_id) == (command.saga_id, 7, command.message_id)
    assert sent.correlation_id == command.correlation_id


def test_a_refused_saga_step_gets_the_failed_event_outside_the_saga_and_a_step_failure() -> None:
    command = saga_command()
    uow = MemoryUnitOfWork()
    error = FailedPrecondition("volume is Migrating", field="volume_id")
    failed = SnapshotCreateFailed(snapshot_id=uuid4(), volume_id=uuid4(), error=error.info())
    refuse(uow, Requester.of(command), failed, error.info())
    domain, step = uow.emitted
    assert isinstance(domain.payload, SnapshotCreateFailed)
    assert (domain.saga_id, domain.step) == (None, None)
    assert isinstance(step.payload, StepFailed)
    assert (step.saga_id, step.step, step.causation_id) == (command.saga_id, 7, command.message_id)


def test_a_command_to_the_agent_keeps_the_correlation_and_token_but_not_the_saga() -> None:
    command = saga_command()
    uow = MemoryUnitOfWork()
    sent = to_agent(uow, Requester.of(command), CreateSnapshot(snapshot_id=uuid4(), volume_id=uuid4(), name="x"))
    assert (sent.saga_id, sent.step) == (None, None)  # the agent answers the service, not the saga
    assert (sent.correlation_id, sent.fencing_token, sent.causation_id) == (
        command.correlation_id,
        12,
        command.message_id,
    )


def test_a_policy_run_always_asks_for_the_same_snapshot() -> None:
    policy_id = uuid4()
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert run_snapshot_id(policy_id, at) == run_snapshot_id(policy_id, at)
    assert run_snapshot_id(policy_id, at) != run_snapshot_id(policy_id, at.replace(hour=2))
    assert run_snapshot_id(policy_id, at) != run_snapshot_id(uuid4(), at)


def test_the_read_model_handlers_and_only_they_commit_in_one_round_trip() -> None:
    deps = cast(SnapshotDeps, object())  # the table binds deps; it is not used here
    table = bind_context(HANDLERS, deps)
    lazy = {model for model, handler in table.items() if has_deferred_writes(handler)}
    assert lazy == {model for model, handler in EVENT_HANDLERS.items() if handler.__module__ == read_model.__name__}
    assert PoolAdded in lazy
    assert not lazy & set(COMMAND_HANDLERS)
