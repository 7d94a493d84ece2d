"""Deterministic replay without any I/O: recorded outcomes drive the code; a different path is a divergence."""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import pytest
from pydantic import SecretStr

from sagas import SagaContext, SagaRegistry, saga
from sagas.records import SagaInstance, SagaStatus, StepKind, StepRecord, StepStatus, StoredMessage
from sagas.replay import Outcome, check_replay, replay
from schemas import Command, InvalidArgument, message, uuid7
from schemas.sagas import StepSucceeded
from tests.sagas_fixtures import Do, PlanDone, RunPlan, saga_test_messages, test_sagas

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
local_sagas = SagaRegistry()


@saga("sagatest.clocks", 1, into=local_sagas)
async def clocks(ctx: SagaContext, plan: RunPlan) -> PlanDone:
    """Reads the time and an id from the context, then sends a step that carries them."""
    moment = await ctx.now()
    made = await ctx.uuid()
    await ctx.step(Do(key=f"{moment.isoformat()}/{made}"))
    return PlanDone(keys=[str(made)])


@saga("sagatest.sleepy", 1, into=local_sagas)
async def sleepy(ctx: SagaContext, plan: RunPlan) -> None:
    """Awaits a real sleep: not deterministic."""
    await asyncio.sleep(0)


def instance_of(name: str, plan: RunPlan) -> SagaInstance:
    return SagaInstance(uuid7(), name, 1, SagaStatus.RUNNING, StoredMessage.of(plan), uuid7(), created_at=NOW)


def answer(record: StepRecord) -> None:
    record.status = StepStatus.SUCCEEDED
    record.result = StoredMessage.of(StepSucceeded())


def run(definition_name: str, registry: SagaRegistry, instance: SagaInstance, journal: list[StepRecord]) -> Outcome:
    definition = registry.get(definition_name)
    assert definition is not None
    result = replay(definition, instance, journal, now=NOW, messages=saga_test_messages)
    journal.extend(result.created)
    return result.outcome


def test_replay_reaches_the_first_step_without_an_outcome_and_stops_there() -> None:
    instance = instance_of("sagatest.plan", RunPlan(keys=["a", "b"]))
    journal: list[StepRecord] = []
    assert run("sagatest.plan", test_sagas, instance, journal) is Outcome.SUSPENDED
    assert [(r.seq, r.kind, r.status) for r in journal] == [(1, StepKind.STEP, StepStatus.SENT)]
    answer(journal[0])
    assert run("sagatest.plan", test_sagas, instance, journal) is Outcome.SUSPENDED
    answer(journal[1])
    assert run("sagatest.plan", test_sagas, instance, journal) is Outcome.COMPLETED
    assert len(journal) == 2


def test_time_and_ids_come_from_the_journal_on_every_replay() -> None:
    instance = instance_of("sagatest.clocks", RunPlan(keys=[]))
    journal: list[StepRecord] = []
    run("sagatest.clocks", local_sagas, instance, journal)
    made = UUID(str(journal[1].value and journal[1].value["uuid"]))
    assert journal[2].command is not None
    assert journal[2].command.payload["key"] == f"{NOW.isoformat()}/{made}"
    answer(journal[2])
    definition = local_sagas.get("sagatest.clocks")
    assert definition is not None
    later = replay(definition, instance, journal, now=datetime(2030, 1, 1, tzinfo=UTC), messages=saga_test_messages)
    assert later.outcome is Outcome.COMPLETED
    assert later.result == PlanDone(keys=[str(made)])


def test_code_that_sends_another_command_at_a_recorded_step_diverges() -> None:
    instance = instance_of("sagatest.plan", RunPlan(keys=["a", "b"]))
    journal: list[StepRecord] = []
    run("sagatest.plan", test_sagas, instance, journal)
    assert journal[0].command is not None
    journal[0].command = StoredMessage("sagatest.do", 1, {"key": "z", "resource": ""})
    definition = test_sagas.get("sagatest.plan")
    assert definition is not None
    result = replay(definition, instance, journal, now=NOW, messages=saga_test_messages)
    assert result.outcome is Outcome.DIVERGED
    assert result.reason == "replay diverged at step 1: the code sends sagatest.do with other arguments than recorded"


def test_code_that_awaits_something_else_than_the_context_is_reported() -> None:
    instance = instance_of("sagatest.sleepy", RunPlan(keys=[]))
    definition = local_sagas.get("sagatest.sleepy")
    assert definition is not None
    result = replay(definition, instance, [], now=NOW, messages=saga_test_messages)
    assert result.outcome is Outcome.DIVERGED
    assert "not a saga operation" in result.reason


def test_check_replay_passes_a_completed_saga_and_fails_a_changed_result() -> None:
    instance = instance_of("sagatest.plan", RunPlan(keys=["a"]))
    journal: list[StepRecord] = []
    run("sagatest.plan", test_sagas, instance, journal)
    answer(journal[0])
    instance.status = SagaStatus.COMPLETED
    instance.result = StoredMessage.of(PlanDone(keys=["a"]))
    assert check_replay(test_sagas, instance, journal, messages=saga_test_messages).ok
    instance.result = StoredMessage.of(PlanDone(keys=["other"]))
    changed = check_replay(test_sagas, instance, journal, messages=saga_test_messages)
    assert not changed.ok
    assert changed.reason == "the code now returns another result than the one recorded"
    instance.name = "sagatest.gone"
    assert check_replay(test_sagas, instance, journal, messages=saga_test_messages).outcome == "missing"


def test_an_instance_stays_on_its_version_while_new_starts_take_the_newest() -> None:
    versions = SagaRegistry()

    @saga("sagatest.versioned", 1, into=versions)
    async def first(ctx: SagaContext, plan: RunPlan) -> None:
        await ctx.step(Do(key="v1"))

    @saga("sagatest.versioned", 2, into=versions)
    async def second(ctx: SagaContext, plan: RunPlan) -> None:
        await ctx.step(Do(key="v2"))

    new_start = versions.for_input(RunPlan)
    assert new_start is not None
    assert new_start.version == 2
    pinned = versions.get("sagatest.versioned", 1)
    assert pinned is not None
    instance = instance_of("sagatest.versioned", RunPlan(keys=[]))
    result = replay(pinned, instance, [], now=NOW, messages=saga_test_messages)
    assert result.created[0].command is not None
    assert result.created[0].command.payload["key"] == "v1"
    with pytest.raises(ValueError, match="already registered"):
        saga("sagatest.versioned", 1, into=versions)(check_later_like)
    saga("sagatest.another", 1, into=versions)(check_later_like)
    with pytest.raises(InvalidArgument, match="input of several sagas"):
        versions.for_input(RunPlan)


async def check_later_like(ctx: SagaContext, plan: RunPlan) -> None:
    """Another function under a taken (name, version)."""


@message("sagatest.secret", into=saga_test_messages)
class AttachWithPassword(Command):
    """A command with a secret field."""

    password: SecretStr


@saga("sagatest.leaky", 1, into=local_sagas)
async def leaky(ctx: SagaContext, plan: RunPlan) -> None:
    """Tries to send a secret through the journal."""
    await ctx.step(AttachWithPassword(password=SecretStr("hunter2")))


def test_a_step_carrying_a_secret_is_refused_and_the_secret_is_kept_nowhere() -> None:
    instance = instance_of("sagatest.leaky", RunPlan(keys=[]))
    journal: list[StepRecord] = []
    definition = local_sagas.get("sagatest.leaky")
    assert definition is not None
    result = replay(definition, instance, journal, now=NOW, messages=saga_test_messages)
    assert result.outcome is Outcome.FAILED
    assert result.reason == (
        "sagatest.secret has secret fields, which a saga journal never keeps; send a reference to the secret instead"
    )
    assert result.created == []
