"""Taking a saga's locks: all or nothing, in canonical order, leased, with a fencing token.

The store decides (see `SagaSession.acquire_locks`); this module turns its answer into the lock step's outcome:
the token (which every later command of the saga carries), a refusal (Aborted), or a place in line with a
deadline timer. A saga in line is woken when a holder releases, and tries again.
"""

from datetime import UTC, datetime, timedelta

from sagas.ports import LockOutcome
from sagas.records import SagaStatus, StepKind, StepRecord, StepStatus, Timer, TimerKind
from sagas.work import SagaWork
from schemas import Aborted

DEFAULT_LEASE = 300.0
HELD_UNTIL_AN_OPERATOR_ACTS = datetime(9999, 12, 31, tzinfo=UTC)  # the lease of a STUCK saga's locks


async def take_locks(work: SagaWork, record: StepRecord, *, deadline_passed: bool = False) -> bool:
    """Try to take the locks of a lock step; return True if the step settled (taken or refused)."""
    resources = list(record.args["resources"])
    wait = record.args.get("wait")
    lease = float(record.args.get("lease") or DEFAULT_LEASE)
    result = await work.session.acquire_locks(
        work.saga_id, resources, lease=lease, now=work.now, queue=wait is not None and not deadline_passed
    )
    if result.outcome is LockOutcome.ACQUIRED:
        assert result.token is not None
        record.status = StepStatus.SUCCEEDED
        record.value = {"token": result.token}
        record.finished_at = work.now
        work.instance.fencing_token = result.token
        work.event("locks taken", seq=record.seq, resources=resources, token=result.token)
        work.touch(record)
        return True
    holders = ", ".join(f"{holder.resource} (saga {holder.saga_id})" for holder in result.holders) or "saga ahead"
    if result.outcome is LockOutcome.QUEUED:
        if record.value is None:
            assert wait is not None
            record.value = {"queued_at": work.now.isoformat()}
            work.schedule(record, TimerKind.LOCK_DEADLINE, float(wait))
            work.event("waiting for locks", seq=record.seq, resources=resources, held_by=holders)
            work.touch(record)
        return False
    await work.session.leave_line(work.saga_id)
    why = f"waited {wait}s in line" if deadline_passed else "it does not wait"
    error = Aborted(f"locks on {', '.join(resources)} are held by {holders}; {why}", field="resources")
    record.status = StepStatus.FAILED
    record.error = error.info()
    record.finished_at = work.now
    work.event("locks refused", seq=record.seq, resources=resources, held_by=holders)
    work.touch(record)
    return True


async def renew_leases(work: SagaWork) -> None:
    """Extend the saga's leases as it makes progress (a saga that stops making progress loses them).

    A STUCK saga holds them until an operator acts: its resources may be half-changed.
    """
    if work.instance.fencing_token is None:
        return
    if work.instance.status is SagaStatus.STUCK:
        await work.session.renew_locks(work.saga_id, HELD_UNTIL_AN_OPERATOR_ACTS)
        return
    leases = [float(r.args.get("lease") or DEFAULT_LEASE) for r in work.records.values() if r.args.get("resources")]
    await work.session.renew_locks(work.saga_id, work.now + timedelta(seconds=max(leases, default=DEFAULT_LEASE)))


async def release(work: SagaWork) -> None:
    """Free the saga's locks and wake the sagas waiting for them."""
    if work.instance.fencing_token is None and all(r.kind is not StepKind.LOCK for r in work.records.values()):
        return  # it never asked for a lock (the only way to hold one or wait in line): two round trips saved
    for waiting in await work.session.release_locks(work.saga_id):
        work.timers.append(Timer(waiting, 0, TimerKind.WAKE, 0, work.now))
