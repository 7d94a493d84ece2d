"""The consumer runtime: one service's handler table on its queue.

For each delivery: decode -> open the unit of work (a duplicate is acked without running) -> handler -> commit ->
reply if asked -> ack. Every handler call has a deadline (`handler_timeout`, or more if the handler or the message
asks for it): a handler that overruns is cancelled, its transaction rolled back, and the message retried as a
`HandlerTimedOut` (transient), dead-lettered after the last level. A `Transient` error parks the message at the
next retry level; after the last level, or on any other error (malformed, unknown type, schema violation, any
non-transient error), it goes to the dead letters with the reason, error class, attempts and origin queue.
Nothing a handler does stops the consumer.
"""

import asyncio
from collections.abc import Mapping, Sequence
from time import perf_counter

import structlog

from bus.codec import decode, encode
from bus.errors import HandlerTimedOut
from bus.ports import (
    Binding,
    Delivery,
    Handler,
    HeaderValue,
    QueueKind,
    Subscription,
    Transport,
    UnitOfWorkFactory,
    deadline_of,
    has_deferred_writes,
)
from bus.topology import ATTEMPTS_HEADER, DEATH_REASON_HEADER, ERROR_CLASS_HEADER, ORIGIN_QUEUE_HEADER
from schemas import Command, Envelope, Message, MessageRegistry, registry
from schemas.errors import StrataError, Transient
from schemas.registry import UnknownMessageType

log = structlog.get_logger(__name__)
_REASON_LIMIT = 500


class Consumer:
    """Runs `handlers` for the messages of the queue `<ns>.<name>`.

    Args:
        transport: the bus transport.
        units: opens each handler's transaction (inbox, outbox, state).
        name: the consumer's name: its queue and its inbox key.
        handlers: `{CreateVolume: create_volume, VolumeCreated: on_volume_created}`.
        prefetch: messages handled at once.
        handler_timeout: seconds a handler may run before it is cancelled (see the module's docstring); by
            default the transport's setting (`STRATA_HANDLER_TIMEOUT`).
    """

    def __init__(
        self,
        transport: Transport,
        units: UnitOfWorkFactory,
        *,
        name: str,
        handlers: Mapping[type[Message], Handler],
        prefetch: int = 64,
        queue_kind: QueueKind = QueueKind.QUORUM,
        messages: MessageRegistry = registry,
        handler_timeout: float | None = None,
    ) -> None:
        if handler_timeout is not None and handler_timeout <= 0:
            raise ValueError("a consumer's handler timeout must be positive")
        self.transport = transport
        self.handler_timeout = handler_timeout if handler_timeout is not None else transport.handler_timeout
        self.units = units
        self.name = name
        self.handlers = dict(handlers)
        self.prefetch = prefetch
        self.queue_kind = queue_kind
        self.messages = messages
        self.queue = ""
        self._subscription: Subscription | None = None
        for model in self.handlers:
            if not model.message_type:
                raise TypeError(f"{model.__name__} in the handler table of {name} is not a registered message")

    @property
    def running(self) -> bool:
        """Whether it consumes: started and not stopped (a daemon's /healthz fails while it does not)."""
        return self._subscription is not None

    def bindings(self) -> list[Binding]:
        """Commands bind on `commands`, everything else on `events`, each by its wire type."""
        return [
            Binding("commands" if issubclass(model, Command) else "events", model.message_type)
            for model in sorted(self.handlers, key=lambda m: m.message_type)
        ]

    async def start(self) -> None:
        """Declare the queue with its bindings and start consuming."""
        self.queue = await self.transport.declare_queue(self.name, self.bindings(), kind=self.queue_kind)
        self._subscription = await self.transport.consume(self.queue, self.handle, prefetch=self.prefetch)
        log.info("consumer started", consumer=self.name, queue=self.queue, types=sorted(self._types()))

    async def stop(self) -> None:
        """Stop taking messages and finish the ones in flight."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.cancel()
            log.info("consumer stopped", consumer=self.name)

    def _types(self) -> Sequence[str]:
        return [model.message_type for model in self.handlers]

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery to the end: it is always settled (or left to the broker if the channel died)."""
        wire = delivery.message
        started = perf_counter()
        attempts = _attempts(wire.headers.get(ATTEMPTS_HEADER))
        # Each delivery runs in its own task, so what is bound here stays with this message's logs.
        structlog.contextvars.bind_contextvars(message_id=wire.message_id, type=wire.type, consumer=self.name)
        try:
            envelope = decode(wire, self.messages)
            handler = self.handlers.get(type(envelope.payload))
            if handler is None:
                raise UnknownMessageType(f"{self.name} has no handler for {envelope.type}", field="type")
        except StrataError as error:
            await self._dead_letter(delivery, error, attempts + 1)
            self._notify(wire.type, "dead", started)
            return
        structlog.contextvars.bind_contextvars(
            correlation_id=str(envelope.correlation_id),
            causation_id=str(envelope.causation_id) if envelope.causation_id else None,
            saga_id=str(envelope.saga_id) if envelope.saga_id else None,
        )
        try:
            reply, duplicate = await self._run(handler, envelope)
        except Transient as error:
            outcome = "retried" if await self._retry(delivery, error, attempts + 1) else "dead"
            self._notify(wire.type, outcome, started)
            return
        except Exception as error:  # any other error is permanent: the consumer dead-letters it and keeps going
            await self._dead_letter(delivery, error, attempts + 1)
            self._notify(wire.type, "dead", started)
            return
        try:
            if reply is not None and wire.reply_to:
                await self.transport.reply(wire, encode(Envelope.wrap(reply, cause=envelope, producer=self.name)))
            await delivery.ack()
        except StrataError as error:
            log.warning("could not settle; the broker will redeliver", error=str(error))
        self._notify(wire.type, "duplicate" if duplicate else "ok", started)

    def _notify(self, message_type: str, outcome: str, started: float) -> None:
        self.transport.handling.notify(self.name, message_type, outcome, perf_counter() - started)

    def deadline(self, handler: Handler, envelope: Envelope) -> float:
        """Seconds `handler` may run on `envelope`: the consumer's default, or more if the handler asked for more
        (`handler_deadline`) or the message carries a longer `deadline_seconds` of its own."""
        asked = getattr(envelope.payload, "deadline_seconds", None)
        message = float(asked) if isinstance(asked, int | float) and not isinstance(asked, bool) else 0.0
        return max(self.handler_timeout, deadline_of(handler) or 0.0, message)

    async def _run(self, handler: Handler, envelope: Envelope) -> tuple[Message | None, bool]:
        reply: Message | None = None
        context = self.units.begin(self.name, envelope, lazy=has_deferred_writes(handler))
        async with context as unit:
            if unit is not None:
                seconds = self.deadline(handler, envelope)
                deadline = asyncio.timeout(seconds)
                try:
                    async with deadline:
                        reply = await handler(envelope.payload, envelope, unit)
                except TimeoutError:
                    if not deadline.expired():
                        raise  # the handler's own timeout, not the consumer's deadline
                    raise HandlerTimedOut(
                        f"{self.name} did not handle {envelope.type} within its deadline of {seconds:g} s; "
                        "it was cancelled and nothing of it was kept"
                    ) from None
        if context.duplicate:
            # Found at the start (the handler did not run) or at commit (nothing it did was kept): no reply either.
            log.info("duplicate delivery acked; nothing was changed")
            return None, True
        return reply, False

    async def _retry(self, delivery: Delivery, error: Transient, attempts: int) -> bool:
        """Park the message for a later attempt; False if it had no attempt left and was dead-lettered."""
        levels = len(self.transport.retry_delays)
        if attempts > levels:
            await self._dead_letter(delivery, error, attempts, f"gave up after {attempts} attempts: ")
            return False
        log.warning("transient failure; retrying later", attempts=attempts, error=error.message[:_REASON_LIMIT])
        try:
            await delivery.retry_later(attempts - 1, {ATTEMPTS_HEADER: attempts})
        except StrataError as settle_error:
            log.warning("could not park for retry; the broker will redeliver", error=str(settle_error))
        return True

    async def _dead_letter(self, delivery: Delivery, error: Exception, attempts: int, prefix: str = "") -> None:
        text = error.message if isinstance(error, StrataError) else str(error)
        reason = (prefix + (text or type(error).__name__))[:_REASON_LIMIT]
        headers: dict[str, HeaderValue] = {
            DEATH_REASON_HEADER: reason,
            ERROR_CLASS_HEADER: type(error).__name__,
            ATTEMPTS_HEADER: attempts,
            ORIGIN_QUEUE_HEADER: delivery.queue,
        }
        log_error = log.error if not isinstance(error, StrataError) else log.warning
        log_error("message dead-lettered", reason=reason, error_class=type(error).__name__, attempts=attempts)
        try:
            await delivery.dead_letter(headers)
        except StrataError as settle_error:
            log.warning("could not dead-letter; the broker will redeliver", error=str(settle_error))


def _attempts(value: HeaderValue) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
