"""What an operator may do to a saga that needs one: retry, skip, abort, compensate. Every action is journaled.

An action changes the saga's records in one transaction and leaves a timer due now, so that a coordinator picks
the saga up and carries on; the operator's tool needs the database only, not the bus.
- retry: a STUCK saga's failed step (or a FAILED saga's failed compensation) gets one more attempt; a saga
  stuck for another reason (a divergence, code that raised) is replayed again with the code now deployed.
- skip: the failed step or compensation counts as done (its result says `skipped`), and the saga goes on.
- abort: the saga ends FAILED now, its locks released; the reason lists what it leaves done and not undone.
- compensate: a running or stuck saga is compensated, even after its pivot (the operator's call).
"""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sagas.ports import SagaSession
from sagas.records import (
    RetryPolicy,
    SagaEvent,
    SagaInstance,
    SagaStatus,
    StepKind,
    StepRecord,
    StepStatus,
    StoredMessage,
    Timer,
    TimerKind,
)
from schemas import FailedPrecondition, NotFound
from schemas.sagas import StepSucceeded


class Action(StrEnum):
    """What an operator may do to a saga."""

    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"
    COMPENSATE = "compensate"


_ALLOWED = {
    Action.RETRY: {SagaStatus.STUCK, SagaStatus.FAILED},
    Action.SKIP: {SagaStatus.STUCK, SagaStatus.FAILED},
    Action.ABORT: {SagaStatus.RUNNING, SagaStatus.COMPENSATING, SagaStatus.STUCK},
    Action.COMPENSATE: {SagaStatus.RUNNING, SagaStatus.STUCK},
}


async def act(
    session: SagaSession, saga_id: UUID, action: Action, *, actor: str, reason: str = "", now: datetime
) -> str:
    """Apply `action` to the saga; return what was done. Raises NotFound or FailedPrecondition, changing nothing."""
    instance = await session.lock_instance(saga_id)
    if instance is None:
        raise NotFound(f"no saga {saga_id}", field="saga_id")
    if instance.status not in _ALLOWED[action]:
        allowed = ", ".join(sorted(status.value for status in _ALLOWED[action]))
        raise FailedPrecondition(f"cannot {action.value} a {instance.status.value} saga (only {allowed})")
    records = await session.load_steps(saga_id)
    failed = _failed(records, compensation=instance.status is SagaStatus.FAILED)
    timers: list[Timer] = []
    if action is Action.RETRY:
        done = _retry(instance, failed, timers, now)
    elif action is Action.SKIP:
        done = _skip(instance, failed, now)
    elif action is Action.COMPENSATE:
        instance.status = SagaStatus.COMPENSATING
        instance.error = f"compensation asked by {actor}" + (f": {reason}" if reason else "")
        done = "compensating"
    else:
        instance.status = SagaStatus.FAILED
        instance.error = f"aborted by {actor}" + (f": {reason}" if reason else "") + _left_done(records)
        for waiting in await session.release_locks(saga_id):
            timers.append(Timer(waiting, 0, TimerKind.WAKE, 0, now))
        done = "aborted; locks released"
    if action is not Action.ABORT:
        timers.append(Timer(saga_id, 0, TimerKind.WAKE, 0, now))
    instance.updated_at = now
    if failed is not None and action in {Action.RETRY, Action.SKIP}:
        await session.save_steps([failed])
    await session.save_instance(instance)
    for timer in timers:
        await session.add_timer(timer)
    await session.record_event(
        SagaEvent(saga_id, now, f"operator.{action.value}", {"by": actor, "reason": reason, "did": done})
    )
    return done


def _failed(records: list[StepRecord], *, compensation: bool) -> StepRecord | None:
    kinds = {StepKind.COMPENSATION} if compensation else {StepKind.STEP, StepKind.QUERY, StepKind.LOCK}
    failed = [r for r in records if r.kind in kinds and r.status is StepStatus.FAILED]
    return failed[-1] if failed else None


def _retry(instance: SagaInstance, failed: StepRecord | None, timers: list[Timer], now: datetime) -> str:
    if instance.status is SagaStatus.FAILED:
        instance.status = SagaStatus.COMPENSATING
    else:
        instance.status, instance.error = SagaStatus.RUNNING, None
    if failed is None:
        return "replaying with the code now deployed"
    if failed.kind is StepKind.LOCK:
        failed.status, failed.value, failed.error = StepStatus.WAITING, None, None
        return f"trying the locks of step {failed.seq} again"
    policy = failed.policy
    failed.policy = RetryPolicy(
        failed.attempt + 1, policy.backoff, policy.multiplier, policy.max_backoff, policy.retry_on
    )
    failed.status = StepStatus.BACKING_OFF
    timers.append(Timer(failed.saga_id, failed.seq, TimerKind.RETRY, failed.attempt, now))
    return f"step {failed.seq} gets attempt {failed.attempt + 1}"


def _skip(instance: SagaInstance, failed: StepRecord | None, now: datetime) -> str:
    if failed is None:
        raise FailedPrecondition("the saga has no failed step to skip; use retry or compensate")
    if failed.kind is StepKind.LOCK:
        raise FailedPrecondition(f"step {failed.seq} takes locks, which cannot be skipped; retry or abort instead")
    if instance.status is SagaStatus.FAILED:
        instance.status = SagaStatus.COMPENSATING
    else:
        instance.status, instance.error = SagaStatus.RUNNING, None
    failed.status = StepStatus.SUCCEEDED
    failed.result = StoredMessage.of(StepSucceeded(skipped=True))
    failed.finished_at = now
    return f"step {failed.seq} counted as done"


def _left_done(records: list[StepRecord]) -> str:
    undone = {r.compensates for r in records if r.kind is StepKind.COMPENSATION and r.status is StepStatus.SUCCEEDED}
    left = [
        f"step {r.seq} ({r.command.type if r.command else r.kind.value})"
        for r in records
        if r.kind is StepKind.STEP and r.status is StepStatus.SUCCEEDED and r.compensate and r.seq not in undone
    ]
    return f". Done and not undone: {', '.join(left)}" if left else ""
