"""Saga test kit: test messages, a configurable test saga and a participant that misbehaves on demand.

The participant succeeds, fails, stays silent (with or without doing the work), answers twice or answers late,
as the test plans it per effect; it records effects and checks fencing tokens.
"""

from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import Field

from bus.facade import Bus
from bus.ports import Handler, UnitOfWork
from sagas import RetryPolicy, SagaContext, SagaRegistry, saga
from sagas.participant import reply_failure, reply_success
from schemas import Command, Envelope, Event, Message, MessageRegistry, StrataError, message
from schemas.errors import ERROR_CLASSES, Aborted, NotFound
from schemas.sagas import SagaEnded, StartSaga, StepFailed, StepSucceeded

saga_test_messages = MessageRegistry()
for _model in (StepSucceeded, StepFailed, StartSaga, SagaEnded):
    saga_test_messages.register(_model, _model.message_type, _model.message_version)

test_sagas = SagaRegistry()
PRODUCER = "participant@test"


class Clock:
    """The engine's time in tests: the real time, moved on by `advance` instead of sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Move the time on by `seconds`."""
        self.offset += timedelta(seconds=seconds)


class FencingGuard:
    """The test participant's fencing, in memory: the highest token seen per resource; older tokens are refused."""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}

    def check(self, resource: str, token: int | None) -> None:
        """Raise Aborted if `token` is older than one already seen for `resource`; remember it otherwise."""
        if token is None:
            raise Aborted(f"a command on {resource} carries no fencing token", field="fencing_token")
        seen = self.highest.get(resource, 0)
        if token < seen:
            raise Aborted(
                f"stale fencing token {token} for {resource} (a newer holder has {seen})", field="fencing_token"
            )
        self.highest[resource] = token


@message("sagatest.do", into=saga_test_messages)
class Do(Command):
    """Do the work named `key` (on `resource`, checking the fencing token, if one is named)."""

    key: str
    resource: str = ""


@message("sagatest.undo", into=saga_test_messages)
class Undo(Command):
    """Undo the work named `key`."""

    key: str


@message("sagatest.check", into=saga_test_messages)
class Check(Command):
    """Probe: has the work named `key` been done? NOT_FOUND if not."""

    key: str


@message("sagatest.nowhere", into=saga_test_messages)
class Nowhere(Command):
    """A command that no participant consumes (as one sent to a mistyped host would be)."""

    key: str


@message("sagatest.other", into=saga_test_messages)
class Other(Command):
    """A command the divergent version of the test saga sends instead of Do."""

    key: str


@message("sagatest.run", into=saga_test_messages)
class RunPlan(Command):
    """Start the test saga."""

    keys: list[str]
    locks: list[str] = Field(default_factory=list)
    wait: float | None = None
    lease: float = 300.0
    resource: str = ""
    pivot_after: int | None = None
    parallel: bool = False
    timeout: float | None = None
    probe: bool = False
    attempts: int = 3
    divergent: bool = False
    nowhere: bool = False  # after the keys, a step (default timeout and retries) whose command reaches nobody


@message("sagatest.done", into=saga_test_messages)
class PlanDone(Event):
    """The test saga's result."""

    keys: list[str]


DIVERGE: dict[str, bool] = {"on": False}  # flipped by the divergence test: "the code changed under the saga"


@saga("sagatest.plan", 1, into=test_sagas)
async def run_plan(ctx: SagaContext, plan: RunPlan) -> PlanDone:
    """Lock, then do each key (in order or in parallel) with its undo; pivot where the plan says."""
    policy = RetryPolicy(attempts=plan.attempts, backoff=0.02, multiplier=1.5, max_backoff=0.1)
    if plan.locks:
        await ctx.lock(*plan.locks, wait=plan.wait, lease=plan.lease)
    if plan.parallel:
        steps = [ctx.step(Do(key=key), compensate=Undo(key=key), retry=policy) for key in plan.keys]
        await ctx.gather(*steps)
        return PlanDone(keys=plan.keys)
    for index, key in enumerate(plan.keys):
        if plan.divergent and DIVERGE["on"]:
            await ctx.step(Other(key=key))
        await ctx.step(
            Do(key=key, resource=plan.resource),
            compensate=Undo(key=key),
            retry=policy,
            timeout=plan.timeout,
            probe=Check(key=key) if plan.probe else None,
            compensate_retry=RetryPolicy(attempts=2, backoff=0.02),
        )
        if plan.pivot_after == index:
            await ctx.pivot()
    if plan.nowhere:
        await ctx.step(Nowhere(key="lost"), probe=Check(key="lost") if plan.probe else None)
    return PlanDone(keys=plan.keys)


@message("sagatest.run_later", into=saga_test_messages)
class CheckLater(Command):
    """Start the saga that checks later."""

    keys: list[str]


@saga("sagatest.check_later", 1, into=test_sagas)
async def check_later(ctx: SagaContext, plan: CheckLater) -> PlanDone:
    """Started by name (`saga.start`): do the first key, sleep durably, then ask whether it was done."""
    await ctx.step(Do(key=plan.keys[0]), compensate=Undo(key=plan.keys[0]))
    await ctx.sleep(0.05)
    answer = await ctx.query(Check(key=plan.keys[0]))
    assert isinstance(answer, StepSucceeded)
    return PlanDone(keys=[str(answer.result["done"])])


class Participant:
    """A service that takes part in the test saga; plan its behaviour per effect with `plan`.

    Behaviours: `ok`; `fail:<CODE>` (reply failed, nothing done); `silent` (do it, never reply); `lost` (do
    nothing, never reply); `twice` (do it, reply twice); `late` (do it, hold the reply until `release_late`).
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.effects: list[str] = []
        self.received: list[Envelope] = []
        self.behaviours: dict[str, deque[str]] = defaultdict(deque)
        self.held: list[Envelope] = []
        self.fencing = FencingGuard()

    def plan(self, effect: str, *behaviours: str) -> None:
        """Behave as told for the next deliveries of `effect` (`do:a`, `undo:a`), then `ok`."""
        self.behaviours[effect].extend(behaviours)

    def handlers(self) -> dict[type[Message], Handler]:
        """The participant's handler table."""
        return {Do: self.do, Undo: self.undo, Check: self.check}

    async def do(self, command: Do, envelope: Envelope, uow: UnitOfWork) -> None:
        if command.resource:
            try:
                self.fencing.check(command.resource, envelope.fencing_token)
            except Aborted as error:
                reply_failure(uow, envelope, error, producer=PRODUCER)
                return
        if self._act(f"do:{command.key}", envelope, uow):
            await self.record(uow, f"do:{command.key}", envelope)

    async def undo(self, command: Undo, envelope: Envelope, uow: UnitOfWork) -> None:
        if self._act(f"undo:{command.key}", envelope, uow):
            await self.record(uow, f"undo:{command.key}", envelope)

    async def record(self, uow: UnitOfWork, effect: str, envelope: Envelope) -> None:
        """Where an effect is kept besides `effects` (in memory here; a table in the PostgreSQL participant)."""

    async def check(self, command: Check, envelope: Envelope, uow: UnitOfWork) -> None:
        self.received.append(envelope)
        if f"do:{command.key}" in self.effects:
            reply_success(uow, envelope, {"done": True}, producer=PRODUCER)
        else:
            reply_failure(uow, envelope, NotFound(f"{command.key} was never done"), producer=PRODUCER)

    def _act(self, effect: str, envelope: Envelope, uow: UnitOfWork) -> bool:
        self.received.append(envelope)
        planned = self.behaviours[effect]
        behaviour = planned.popleft() if planned else "ok"
        if behaviour.startswith("fail:"):
            error: type[StrataError] = ERROR_CLASSES[behaviour.removeprefix("fail:")]
            reply_failure(uow, envelope, error(f"planned failure of {effect}"), producer=PRODUCER)
            return False
        if behaviour == "lost":
            return False
        self.effects.append(effect)
        if behaviour == "late":
            self.held.append(envelope)
        elif behaviour != "silent":
            reply_success(uow, envelope, {"effect": effect}, producer=PRODUCER)
        if behaviour == "twice":
            reply_success(uow, envelope, {"effect": effect, "again": True}, producer=PRODUCER)
        return True

    async def release_late(self) -> None:
        """Send the held replies now."""
        held, self.held = self.held, []
        for envelope in held:
            await self.bus.publish(
                Envelope.wrap(StepSucceeded(result={"late": True}), cause=envelope, producer=PRODUCER)
            )

    def count(self, effect: str) -> int:
        """How many times `effect` happened."""
        return self.effects.count(effect)

    def commands_of(self, saga_id: UUID) -> list[Envelope]:
        """The commands of one saga this participant received, in order."""
        return [envelope for envelope in self.received if envelope.saga_id == saga_id]


EFFECTS_TABLE = "CREATE TABLE IF NOT EXISTS saga_effects (effect text NOT NULL, saga_id uuid, message_id uuid NOT NULL)"


class PostgresParticipant(Participant):
    """The participant with its effects in its own table, in the unit of work's transaction (the inbox guards it)."""

    async def record(self, uow: UnitOfWork, effect: str, envelope: Envelope) -> None:
        await uow.connection.execute(
            "INSERT INTO saga_effects (effect, saga_id, message_id) VALUES ($1, $2, $3)",
            effect,
            envelope.saga_id,
            envelope.message_id,
        )
