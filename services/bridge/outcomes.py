"""The bridge's handler table on strata's bus: the outcome events that settle bridged operations.

Every outcome event of a row (`mapping.py`) comes here; the operations open on its entity for that row are closed
with strata's verdict and their answer is queued, in CloudStack's format, in the same transaction (the answers are
the bridge's outbox towards CloudStack: `answers.py` publishes them). An event about an entity no bridged
operation waits for is none of the bridge's business and changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from services.bridge import records
from services.bridge.answering import outcome_answer
from services.bridge.mapping import ROWS, outcome_events, settle
from services.runtime.handlers import ContextHandler


@dataclass(frozen=True)
class OutcomeDeps:
    """What the outcome handler needs: how to wake the answer relay once an answer is queued."""

    wake: Callable[[], None]


async def on_outcome(event: Event, envelope: Envelope, uow: UnitOfWork, deps: OutcomeDeps) -> Message | None:
    """Settle the operations this event ends, and queue their answers for CloudStack."""
    answered = False
    for row in ROWS:
        settled = settle(row, event)
        if settled is None:
            continue
        entity, succeeded, reason = settled
        for operation in await records.open_operations_of(uow.connection, entity, [row.event]):
            answer = outcome_answer(
                operation, row, succeeded=succeeded, reason=reason, occurred_at=envelope.occurred_at
            )
            await records.settle_operation(
                uow.connection, operation.operation_key, succeeded=succeeded, reason=reason, answer=answer
            )
            answered = True
    if answered:
        deps.wake()
    return None


EVENT_HANDLERS: dict[type[Message], ContextHandler[OutcomeDeps]] = dict.fromkeys(outcome_events(), on_outcome)
"""Every outcome event of the mapping table goes to `on_outcome`."""
