"""Names and arguments of every exchange and queue under a namespace, and topic matching.

```
<ns>.commands   topic    each service binds its queue to the command types it owns
<ns>.events     topic    any service binds to the events it follows
<ns>.retry      headers  routes a message by its retry level to <ns>.retry.<level>, a TTL queue that
                         dead-letters it back to its origin queue (its routing key) through the default exchange
<ns>.dead       fanout   into the quorum queue <ns>.dead
```
"""

import re
from dataclasses import dataclass
from typing import Final

from bus.ports import QueueKind
from schemas.errors import InvalidArgument

EXCHANGES: Final = ("commands", "events", "retry", "dead")
RETRY_LEVEL_HEADER: Final = "strata-retry-level"
"""Header the retry exchange routes on. Not `x-`: a headers exchange ignores headers starting with `x-`."""

ATTEMPTS_HEADER: Final = "x-attempts"
DEATH_REASON_HEADER: Final = "x-death-reason"
ERROR_CLASS_HEADER: Final = "x-error-class"
ORIGIN_QUEUE_HEADER: Final = "x-origin-queue"
IN_REPLY_TO_HEADER: Final = "strata-in-reply-to"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


def check_name(name: str, what: str) -> str:
    """Return `name` if it is a lower-case dotted name, else raise InvalidArgument."""
    if not _NAME.match(name) or len(name) > 200:
        raise InvalidArgument(f"{what} {name!r} must be lower-case letters, digits, '-', '_' and dots", field=what)
    return name


@dataclass(frozen=True, slots=True)
class Topology:
    """The full names of one namespace's exchanges and queues."""

    namespace: str

    def __post_init__(self) -> None:
        check_name(self.namespace, "namespace")

    def exchange(self, short: str) -> str:
        """Full name of `commands`, `events`, `retry` or `dead`."""
        if short not in EXCHANGES:
            expected = ", ".join(EXCHANGES)
            raise InvalidArgument(f"unknown exchange {short!r}; expected one of {expected}", field="exchange")
        return f"{self.namespace}.{short}"

    def queue(self, name: str) -> str:
        """Full name of a service queue; refuses the names the fixed topology uses."""
        check_name(name, "queue")
        if name in {"dead", "retry", "watch"} or name.startswith(("watch.", "retry.")):
            raise InvalidArgument(f"queue name {name!r} is reserved for the bus itself", field="queue")
        return f"{self.namespace}.{name}"

    @property
    def dead_queue(self) -> str:
        """The queue that holds dead letters."""
        return f"{self.namespace}.dead"

    def delay_queue(self, level: int) -> str:
        """The TTL queue of retry level `level` (0-based)."""
        return f"{self.namespace}.retry.{level}"

    def owns(self, name: str) -> bool:
        """True if `name` lies in this namespace."""
        return name.startswith(f"{self.namespace}.")


def service_queue_arguments(kind: QueueKind, *, dead_exchange: str, delivery_limit: int) -> dict[str, str | int]:
    """Arguments of a durable service queue: poison messages end in the dead letters, never silently dropped."""
    if kind is QueueKind.CLASSIC:
        return {"x-queue-type": "classic", "x-dead-letter-exchange": dead_exchange}
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_exchange,
        # At-least-once dead-lettering only holds with reject-publish (RabbitMQ 3.10+).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def delay_queue_arguments(delay_seconds: float) -> dict[str, str | int]:
    """A quorum queue whose messages expire after the delay and go back, by their routing key, to their origin."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": max(1, round(delay_seconds * 1000)),
        "x-dead-letter-exchange": "",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_queue_arguments() -> dict[str, str | int]:
    """The dead letters: a quorum queue with no limit, read by `strata dlq`."""
    return {"x-queue-type": "quorum"}


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
