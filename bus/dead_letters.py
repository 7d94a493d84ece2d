"""Reading a dead letter's headers: why it died, where it came from, how often it was tried."""

from bus.ports import DeadLetter, WireMessage
from bus.topology import ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER, ORIGIN_QUEUE_HEADER

# RabbitMQ's own dead-lettering (a quorum queue's delivery limit) names the queue and reason in these.
_BROKER_QUEUE_HEADER = "x-first-death-queue"
_BROKER_REASON_HEADER = "x-first-death-reason"


def dead_letter_of(message: WireMessage) -> DeadLetter:
    """Describe a message found in the dead letters, whether the runtime or the broker put it there."""
    headers = message.headers
    origin = headers.get(ORIGIN_QUEUE_HEADER) or headers.get(_BROKER_QUEUE_HEADER) or ""
    reason = headers.get(DEATH_REASON_HEADER) or headers.get(_BROKER_REASON_HEADER) or "unknown"
    attempts = headers.get(ATTEMPTS_HEADER)
    return DeadLetter(
        message=message,
        origin_queue=str(origin),
        reason=str(reason),
        error_class=str(headers.get(ERROR_CLASS_HEADER) or ""),
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
    )
