"""The ports of the bus: what services, sagas and the runtime rely on, whatever the adapter.

Adapters: `RabbitTransport` (aio-pika) and `MemoryTransport` for the transport; `PostgresUnitOfWork` and
`MemoryUnitOfWork` for the transactional outbox, inbox and journal.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

from schemas import Envelope, Message

HeaderValue = str | int | float | bool | None


class QueueKind(StrEnum):
    QUORUM = "quorum"
    CLASSIC = "classic"


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One message as it crosses a transport: a JSON body and AMQP-like properties."""

    body: bytes
    message_id: str
    type: str
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    correlation_id: str | None = None
    timestamp: datetime | None = None
    app_id: str | None = None
    content_type: str = "application/json"
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """Route messages published to `exchange` ('commands' or 'events', short names) with a matching key."""

    exchange: str
    routing_key: str


class Delivery(Protocol):
    """A received message that the consumer must settle exactly once."""

    @property
    def message(self) -> WireMessage:
        """The message as received."""

    @property
    def queue(self) -> str:
        """The queue it came from (full name, with the namespace)."""

    @property
    def redelivered(self) -> bool:
        """True if the broker delivered it before (the earlier consumer did not settle it)."""

    async def ack(self) -> None:
        """Settle it as done: it leaves the queue."""

    async def requeue(self) -> None:
        """Give it back for immediate redelivery (e.g. a consumer shutting down)."""

    async def retry_later(self, level: int, headers: Mapping[str, HeaderValue]) -> None:
        """Park it at delay `level`; it comes back to its queue with `headers` added. Settles the original."""

    async def dead_letter(self, headers: Mapping[str, HeaderValue]) -> None:
        """Move it to the dead letters with `headers` saying why. Settles the original."""


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    """A consumer attached to a queue, kept attached across reconnects until cancelled."""

    async def cancel(self) -> None:
        """Stop taking new messages, wait for the handlers in flight; what they left unsettled is redelivered."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in the dead letters, with why it is there."""

    message: WireMessage
    origin_queue: str
    reason: str
    error_class: str
    attempts: int


class Transport(Protocol):
    """A message broker: topic exchanges for commands and events, durable queues, delays and dead letters."""

    @property
    def namespace(self) -> str:
        """Prefix of every exchange and queue name this transport touches."""

    @property
    def handling(self) -> "HandlingObservers":
        """Told how each message that a consumer on this transport handled ended (a daemon's metrics)."""

    async def start(self) -> None:
        """Connect and declare the fixed topology (commands, events, retry and dead exchanges)."""

    async def close(self) -> None:
        """Cancel consumers gracefully and disconnect."""

    async def declare_queue(self, name: str, bindings: Sequence[Binding], *, kind: QueueKind = QueueKind.QUORUM) -> str:
        """Declare a durable queue `<ns>.<name>` with its bindings; return its full name. Idempotent."""

    async def consumers(self, name: str) -> int | None:
        """How many consumers the queue `<ns>.<name>` has now (0: its service is not running); None if it does not
        exist (its service never started in this namespace). Declares nothing."""

    async def publish(self, exchange: str, routing_key: str, message: WireMessage) -> None:
        """Publish persistently and return once the broker confirmed it; raise if unroutable, nacked or down."""

    async def consume(self, queue: str, handler: DeliveryHandler, *, prefetch: int) -> Subscription:
        """Deliver messages of the queue (full name) to `handler`, at most `prefetch` unsettled at once."""

    async def request(
        self, exchange: str, routing_key: str, message: WireMessage, *, timeout: float | None = None
    ) -> WireMessage:
        """Publish and wait for one reply on direct reply-to, up to `timeout` seconds (by default the transport's
        `request_timeout` setting); raise `RequestTimedOut` (transient) then."""

    async def reply(self, request: WireMessage, message: WireMessage) -> None:
        """Send `message` as the reply to `request` (to its reply_to address); a requester gone is only logged."""

    @property
    def retry_delays(self) -> Sequence[float]:
        """Seconds of each retry level; `retry_later(level)` takes 0 <= level < len(retry_delays)."""

    @property
    def handler_timeout(self) -> float:
        """Seconds a consumer on this transport lets a handler run unless it is told otherwise (its settings)."""

    async def publish_many(self, exchange: str, messages: Sequence[tuple[str, WireMessage]]) -> None:
        """Publish (routing key, message) pairs with many confirms outstanding; return once all are confirmed."""

    async def publish_each(self, items: Sequence[tuple[str, str, WireMessage]]) -> list[BaseException | None]:
        """Publish (exchange, routing key, message) items in order, their confirms awaited together; return one
        outcome per item, in order: None once confirmed, else what `publish` of that item alone would have raised
        (`Unroutable`, `PublishRejected`, `BrokerUnavailable` after the outage bound, ...). One item failing does
        not fail the others; a cancellation of the call is raised, not returned."""

    async def watch(self, bindings: Sequence[Binding], handler: DeliveryHandler) -> Subscription:
        """Deliver copies of what the bindings match to `handler` through a private queue that vanishes with it."""


@runtime_checkable
class DeadLetters(Protocol):
    """The dead letters of a namespace, for operators (`strata dlq`)."""

    async def list_dead(self, limit: int = 1000) -> list[DeadLetter]:
        """Return up to `limit` dead letters, oldest first, leaving them in place."""

    async def redrive_dead(self, message_ids: Sequence[str] | None = None) -> int:
        """Send the named dead letters (all if None) back to their origin queue, attempts reset; return how many."""

    async def purge_dead(self, message_ids: Sequence[str] | None = None) -> int:
        """Delete the named dead letters (all if None); return how many."""

    async def count_dead(self) -> int:
        """How many dead letters wait, without reading them."""


class UnitOfWork(Protocol):
    """One handler's transaction: its state change, its inbox row and what it emits commit together."""

    @property
    def connection(self) -> Any:  # the adapter's connection (asyncpg.Connection for Postgres); services' repos use it
        """The open transaction's connection, for the service's own state."""

    def emit(self, envelope: Envelope) -> None:
        """Queue a message to publish once the transaction commits (written to the outbox in the same transaction)."""

    def defer(self, statement: str, *args: Any) -> None:
        """Run the write `statement` (placeholders `$1`... for `args`) with the commit, in its round trip.

        For a write that nothing in the transaction reads afterwards; a failure still rolls everything back (it is
        raised when the unit of work ends). An adapter without a database refuses it.
        """


class UnitOfWorkFactory(Protocol):
    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> "UnitOfWorkContext":
        """Open a unit of work; with `incoming`, it first records the inbox row and knows duplicates.

        `lazy` (for a handler marked `deferred_writes`): the unit may begin only at its commit, recording the inbox
        row then; `connection` is closed to the handler, and a duplicate is known after the handler ran.
        """


class UnitOfWorkContext(Protocol):
    @property
    def duplicate(self) -> bool:
        """After the block: True if `incoming` proved already processed, and then nothing of the unit was kept.

        The contract (tests/contract/test_bus_postgres_uow_contract.py, run against every adapter): an eager unit
        knows a duplicate before the handler runs (`__aenter__` gives None and the handler does not run); a lazy unit
        (`begin(..., lazy=True)`, and the saga coordinator's units) knows it only at its commit, after the handler
        ran, and keeps nothing the handler wrote or emitted. Either way, a duplicate changes nothing.
        """

    async def __aenter__(self) -> UnitOfWork | None:
        """Begin; return None if `incoming` was already processed by this consumer (a duplicate)."""

    async def __aexit__(self, *exc_info: object) -> None:
        """Commit (outbox, inbox, journal, state) if no exception, else roll back."""


_DEFERRED_WRITES = "__strata_deferred_writes__"
H = TypeVar("H", bound=Callable[..., Awaitable[Message | None]])


def deferred_writes(handler: H) -> H:
    """Mark a handler that reads nothing in its transaction and writes only with `uow.defer` (a projection of
    events, a record of what was reported): its unit of work then begins at its commit, and BEGIN, the inbox row,
    its writes, the outbox and journal rows and COMMIT go to the database in one round trip instead of two or more.

    The handler must not touch `uow.connection` (it refuses, so a mistake shows in the first test) and must have no
    effect outside its unit of work: a duplicate delivery is known only at the commit, after the handler ran, and
    then nothing it wrote or emitted is kept.
    """
    setattr(handler, _DEFERRED_WRITES, True)
    return handler


def has_deferred_writes(handler: Callable[..., object]) -> bool:
    """True if `handler` was marked with `deferred_writes` (also through `functools.partial`)."""
    while isinstance(handler, partial):
        handler = handler.func
    return getattr(handler, _DEFERRED_WRITES, False) is True


_DEADLINE = "__strata_handler_deadline__"


def handler_deadline(seconds: float) -> Callable[[H], H]:
    """Let a handler run up to `seconds` before the consumer cancels it (instead of the consumer's default), for a
    handler whose work is long by nature. A message that carries `deadline_seconds` gets at least that long too."""
    if seconds <= 0:
        raise ValueError("a handler's deadline must be positive")

    def mark(handler: H) -> H:
        setattr(handler, _DEADLINE, float(seconds))
        return handler

    return mark


def deadline_of(handler: Callable[..., object]) -> float | None:
    """The deadline `handler` asked for with `handler_deadline` (also through `functools.partial`), else None."""
    while isinstance(handler, partial):
        handler = handler.func
    value = getattr(handler, _DEADLINE, None)
    return value if isinstance(value, float) else None


# The first argument is the handler's own message class (`CreateVolume`); a handler table pairs each class with its
# handler, and the runtime dispatches on the class, so the parameter is typed by each handler, not here.
Handler = Callable[[Any, Envelope, UnitOfWork], Awaitable[Message | None]]
"""`handler(message, envelope, uow)`; a request handler returns the reply, others return None."""


class HandlingObserver(Protocol):
    """Told how each message a consumer handled ended; a daemon's metrics implement it."""

    def observe(self, consumer: str, message_type: str, outcome: str, seconds: float) -> None:
        """Record one message: `outcome` is `ok`, `duplicate`, `retried` or `dead`; `seconds` from decode to settle."""


class HandlingObservers:
    """The observers of one transport's consumers: every consumer built on a transport reports each message it
    handled to its transport's observers (`transport.handling`), and the process that serves `/metrics` adds its
    metrics there. It belongs to the transport, which the daemon's bootstrap builds: no process-wide list."""

    def __init__(self) -> None:
        self._observers: list[HandlingObserver] = []

    def add(self, observer: HandlingObserver) -> None:
        """Report every message handled on this transport to `observer` (idempotent)."""
        if observer not in self._observers:
            self._observers.append(observer)

    def remove(self, observer: HandlingObserver) -> None:
        """Undo `add`."""
        if observer in self._observers:
            self._observers.remove(observer)

    def notify(self, consumer: str, message_type: str, outcome: str, seconds: float) -> None:
        """Tell every observer how one message ended."""
        for observer in self._observers:
            observer.observe(consumer, message_type, outcome, seconds)
