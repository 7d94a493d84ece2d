"""Compensation: undo what a saga did, in reverse order, each undo a step with its own retries.

It starts only once no forward step is in flight (a step still running might succeed and then need undoing);
pending retries and lock waits are cancelled. A step that timed out with no probe to ask may have had its effect,
so it is undone too (compensations are idempotent, like every command). If an undo fails for good, the saga ends
FAILED and its reason lists what is left to clean up, in the order it should be done.
"""

from sagas.ending import finish
from sagas.records import RetryPolicy, SagaStatus, StepKind, StepRecord, StepStatus
from sagas.steps import cancel, unknown_outcome
from sagas.work import SagaWork

COMPENSATION_POLICY = RetryPolicy(attempts=5, backoff=0.5, multiplier=2.0, max_backoff=30.0)


async def compensate(work: SagaWork, *, announce: bool = False) -> None:
    """Move compensation on as far as it can go now."""
    records = work.records
    forward = [record for record in records.values() if record.kind is not StepKind.COMPENSATION]
    for record in forward:
        if record.status is StepStatus.BACKING_OFF or (
            record.status is StepStatus.WAITING and record.kind in {StepKind.SLEEP, StepKind.LOCK}
        ):
            cancel(work, record)
    if any(record.status in {StepStatus.SENT, StepStatus.PROBING} for record in forward):
        return
    await work.session.leave_line(work.saga_id)
    undone = {record.compensates: record for record in records.values() if record.kind is StepKind.COMPENSATION}
    to_undo = sorted(
        (r for r in forward if r.compensate and (r.status is StepStatus.SUCCEEDED or unknown_outcome(r))),
        key=lambda record: record.seq,
        reverse=True,
    )
    for index, record in enumerate(to_undo):
        undo = undone.get(record.seq)
        if undo is None:
            work.send(_compensation_of(work, record), 1)
            return
        if not undo.status.settled:
            return
        if undo.status is not StepStatus.SUCCEEDED:
            await finish(work, SagaStatus.FAILED, _what_is_left(record, undo, to_undo[index:]), announce=announce)
            return
    await finish(work, SagaStatus.COMPENSATED, announce=announce)


def _compensation_of(work: SagaWork, record: StepRecord) -> StepRecord:
    policy_json = record.args.get("compensate_retry")
    undo = StepRecord(
        saga_id=work.saga_id,
        seq=work.next_seq(),
        kind=StepKind.COMPENSATION,
        status=StepStatus.SENT,
        command=record.compensate,
        compensates=record.seq,
        policy=RetryPolicy.from_json(policy_json) if policy_json else COMPENSATION_POLICY,
        timeout=record.timeout,
        created_at=work.now,
    )
    work.touch(undo)
    return undo


def _what_is_left(record: StepRecord, undo: StepRecord, left: list[StepRecord]) -> str:
    error = undo.error.message if undo.error else undo.status.value.lower()
    assert record.command is not None
    todo = "; ".join(
        f"step {step.seq} ({step.command.type if step.command else '?'}): "
        f"{step.compensate.type if step.compensate else '?'}"
        for step in left
    )
    return (
        f"compensation of step {record.seq} ({record.command.type}) failed: {error}. Left to clean up, in order: {todo}"
    )
