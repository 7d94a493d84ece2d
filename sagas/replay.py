"""Deterministic replay: run saga code from the top against its journal, up to the first missing outcome.

The saga function is driven by hand (`coroutine.send`), never by the event loop: every operation it awaits is
answered from the journal at once, so a replay is pure, synchronous and repeatable. Code that awaits anything
else (a real sleep, a network call) is not deterministic and is reported as such.
"""

import copy
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sagas.context import Divergence, SagaContext, Suspend
from sagas.definition import SagaDefinition, SagaRegistry
from sagas.records import SagaInstance, SagaStatus, StepKind, StepRecord
from schemas import ErrorInfo, Message, MessageRegistry, StrataError


class Outcome(StrEnum):
    """Where a replay stopped."""

    COMPLETED = "completed"  # the function returned
    FAILED = "failed"  # the function raised
    SUSPENDED = "suspended"  # it waits for an outcome not in the journal yet
    DIVERGED = "diverged"  # it did something else than the journal recorded


@dataclass(slots=True)
class ReplayResult:
    """What one replay found, and the journal entries it created."""

    outcome: Outcome
    result: Message | None = None
    error: ErrorInfo | None = None
    reason: str = ""
    created: list[StepRecord] = field(default_factory=list)


def replay(
    definition: SagaDefinition,
    instance: SagaInstance,
    journal: list[StepRecord],
    *,
    now: datetime,
    messages: MessageRegistry,
) -> ReplayResult:
    """Run `definition` for `instance` against `journal` and report what the code did and created."""
    forward = {record.seq: record for record in journal if record.kind is not StepKind.COMPENSATION}
    context = SagaContext(instance, forward, now=now, messages=messages)
    try:
        command = instance.input.decode(messages)
    except StrataError as error:
        return ReplayResult(Outcome.DIVERGED, reason=f"the input no longer decodes: {error.message}")
    try:
        result = _drive(definition.function(context, command))
    except Suspend:
        return ReplayResult(Outcome.SUSPENDED, created=context.created)
    except Divergence as divergence:
        return ReplayResult(Outcome.DIVERGED, reason=str(divergence))
    except StrataError as error:
        info = error.info()
        return ReplayResult(Outcome.FAILED, error=info, reason=info.message, created=context.created)
    except Exception as error:  # a bug in saga code fails the saga like any error, with its class for the operator
        info = ErrorInfo(code="INTERNAL", error_class=type(error).__name__, message=str(error) or type(error).__name__)
        return ReplayResult(
            Outcome.FAILED, error=info, reason=f"{info.error_class}: {info.message}", created=context.created
        )
    return _completed(context, set(forward), result)


def _completed(context: SagaContext, recorded: set[int], result: Message | None) -> ReplayResult:
    missing = sorted(recorded - set(context.reached))
    if missing:
        reason = str(Divergence(missing[0], "the journal has steps that the code no longer reaches"))
        return ReplayResult(Outcome.DIVERGED, reason=reason)
    return ReplayResult(Outcome.COMPLETED, result=result, created=context.created)


def _drive(coroutine: Coroutine[Any, Any, Message | None]) -> Message | None:
    """Run the saga function to its end or to the exception that stops it, without an event loop."""
    try:
        yielded = coroutine.send(None)
    except StopIteration as stop:
        return stop.value if isinstance(stop.value, Message) else None
    coroutine.close()
    raise Divergence(0, f"the code awaited {type(yielded).__name__}, not a saga operation (use ctx.sleep, ctx.step)")


@dataclass(frozen=True, slots=True)
class ReplayCheck:
    """Whether a recorded saga still replays against the code now registered (`strata saga replay`)."""

    saga_id: str
    name: str
    version: int
    ok: bool
    outcome: str
    reason: str
    steps: int


def check_replay(
    sagas: SagaRegistry, instance: SagaInstance, journal: list[StepRecord], *, messages: MessageRegistry
) -> ReplayCheck:
    """Re-run a recorded saga against the current code, changing nothing, and say whether it diverges."""
    definition = sagas.get(instance.name, instance.version)
    if definition is None:
        reason = f"saga {instance.name} v{instance.version} is not registered"
        return ReplayCheck(str(instance.saga_id), instance.name, instance.version, False, "missing", reason, 0)
    sandbox = copy.deepcopy(journal)
    moment = instance.updated_at or instance.created_at
    assert moment is not None
    result = replay(definition, copy.deepcopy(instance), sandbox, now=moment, messages=messages)
    reason = result.reason
    ok = result.outcome is not Outcome.DIVERGED
    if ok and instance.status is SagaStatus.COMPLETED:
        recorded = instance.result.payload if instance.result else None
        returned = result.result.model_dump(mode="json") if result.result else None
        if result.outcome is not Outcome.COMPLETED:
            ok, reason = False, f"the saga completed, but the code now ends {result.outcome.value}: {reason}"
        elif recorded != returned:
            ok, reason = False, "the code now returns another result than the one recorded"
    steps = len([record for record in journal if record.kind is not StepKind.COMPENSATION])
    return ReplayCheck(str(instance.saga_id), instance.name, instance.version, ok, result.outcome.value, reason, steps)
