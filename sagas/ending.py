"""How a saga ends: its status and reason written, its locks released, waiting sagas woken, the end announced.

STUCK is not an end: it keeps its locks, because the resources may be half-changed until an operator acts.
"""

from sagas.locks import release
from sagas.records import SagaStatus, StoredMessage
from sagas.work import SagaWork
from schemas.sagas import SagaEnded


async def finish(work: SagaWork, status: SagaStatus, reason: str | None = None, *, announce: bool = False) -> None:
    """Put the saga in `status` (an end state, or STUCK) with `reason`."""
    instance = work.instance
    instance.status = status
    if reason is not None:
        instance.error = reason
    if status.ended:
        await release(work)
    work.event(status.value.lower(), reason=instance.error if status is not SagaStatus.COMPLETED else None)
    if announce:
        ended = SagaEnded(saga_id=instance.saga_id, name=instance.name, status=status.value, reason=instance.error)
        work.emit_event(StoredMessage.of(ended))
