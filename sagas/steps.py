"""A step's life after it is sent: replies, retries with back-off, timeouts and probes.

- A success from any attempt settles the step (a late reply is still the truth); a failure counts only if it
  answers the current attempt, and is retried while the policy allows (never while compensating, except for
  compensations themselves).
- A timed-out attempt is probed first when the step has a probe: the probe's success settles the step with the
  probe's answer, NOT_FOUND means the effect did not happen (retry), anything else fails the step. Without a probe
  a timeout counts as a TRANSIENT failure.
- Replies to settled steps (a participant answering twice, or an old attempt answering late) change nothing.
"""

from collections.abc import Callable
from uuid import UUID

from sagas.records import SagaStatus, StepKind, StepRecord, StepStatus, StoredMessage, TimerKind
from sagas.work import SagaWork, command_id, probe_id
from schemas import Envelope, ErrorInfo, Message, NotFound
from schemas.sagas import StepFailed

TIMED_OUT = "StepTimedOut"


def apply_reply(work: SagaWork, record: StepRecord, envelope: Envelope) -> None:
    """Record what a reply to `record` means."""
    payload = envelope.payload
    cause = envelope.causation_id
    if record.status.settled or cause is None:
        work.event("reply ignored", seq=record.seq, type=envelope.type, why="the step is settled")
        return
    attempt = _attempt_of(cause, record, command_id)
    if attempt is not None:
        if not isinstance(payload, StepFailed):
            succeed(work, record, payload, f"succeeded (attempt {attempt})")
        elif attempt == record.attempt and record.status in {StepStatus.SENT, StepStatus.PROBING}:
            fail_attempt(work, record, payload.error)
        return
    attempt = _attempt_of(cause, record, probe_id)
    if attempt is None or attempt != record.attempt or record.status is not StepStatus.PROBING:
        work.event("reply ignored", seq=record.seq, type=envelope.type, why="it answers no current attempt or probe")
        return
    if not isinstance(payload, StepFailed):
        _amend_attempt(record, "the probe found it done")
        succeed(work, record, payload, "")
    elif payload.error.code == NotFound.code:
        _amend_attempt(record, "the probe found it not done")
        fail_attempt(work, record, _timed_out(record), close=False)
    else:
        _amend_attempt(record, f"the probe failed: {payload.error.code}")
        _settle_failed(work, record, payload.error)


def on_timeout(work: SagaWork, record: StepRecord, attempt: int) -> None:
    """An attempt (or its probe) got no reply in time."""
    if record.status.settled or attempt != record.attempt:
        return
    if record.status is StepStatus.SENT and record.probe is not None:
        _close_attempt(work, record, "timed out; probing")
        work.send_probe(record)
    elif record.status in {StepStatus.SENT, StepStatus.PROBING}:
        fail_attempt(work, record, _timed_out(record))


def on_retry(work: SagaWork, record: StepRecord, attempt: int) -> None:
    """The back-off after attempt `attempt` is over: send the next one, unless compensation made it pointless."""
    if record.status is not StepStatus.BACKING_OFF or attempt != record.attempt:
        return
    if work.instance.status is not SagaStatus.RUNNING and record.kind is not StepKind.COMPENSATION:
        cancel(work, record)
        return
    work.send(record, attempt + 1)


def succeed(work: SagaWork, record: StepRecord, reply: Message, outcome: str) -> None:
    """Settle the step with `reply` as its result."""
    _close_attempt(work, record, outcome)
    record.status = StepStatus.SUCCEEDED
    record.result = StoredMessage.of(reply)
    record.error = None
    record.finished_at = work.now
    work.touch(record)


def fail_attempt(work: SagaWork, record: StepRecord, error: ErrorInfo, *, close: bool = True) -> None:
    """The current attempt failed with `error`: back off and retry if the policy allows, else fail the step."""
    if close:
        _close_attempt(work, record, error.code if error.error_class != TIMED_OUT else "timed out")
    may_retry = work.instance.status is SagaStatus.RUNNING or record.kind is StepKind.COMPENSATION
    if may_retry and record.policy.retries(error, record.attempt):
        record.status = StepStatus.BACKING_OFF
        record.error = error
        work.schedule(record, TimerKind.RETRY, record.policy.delay(record.attempt), record.attempt)
        work.touch(record)
        return
    _settle_failed(work, record, error)


def cancel(work: SagaWork, record: StepRecord) -> None:
    """Give up a step that has not settled (its retry or its wait no longer matters)."""
    record.status = StepStatus.CANCELLED
    record.finished_at = work.now
    work.touch(record)


def unknown_outcome(record: StepRecord) -> bool:
    """Whether a failed step may have had its effect anyway (it timed out with nothing to ask)."""
    return record.status is StepStatus.FAILED and record.error is not None and record.error.error_class == TIMED_OUT


def _settle_failed(work: SagaWork, record: StepRecord, error: ErrorInfo) -> None:
    record.status = StepStatus.FAILED
    record.error = error
    record.finished_at = work.now
    work.touch(record)


def _close_attempt(work: SagaWork, record: StepRecord, outcome: str) -> None:
    if record.attempts and record.attempts[-1].ended_at is None:
        record.attempts[-1].outcome = outcome
        record.attempts[-1].ended_at = work.now


def _amend_attempt(record: StepRecord, outcome: str) -> None:
    if record.attempts:
        record.attempts[-1].outcome += f"; {outcome}"


def _timed_out(record: StepRecord) -> ErrorInfo:
    return ErrorInfo(
        code="TRANSIENT",
        error_class=TIMED_OUT,
        message=f"no reply to attempt {record.attempt} within {record.timeout}s",
    )


def _attempt_of(cause: UUID, record: StepRecord, derive: Callable[[UUID, int, int], UUID]) -> int | None:
    for attempt in range(record.attempt, 0, -1):
        if derive(record.saga_id, record.seq, attempt) == cause:
            return attempt
    return None
