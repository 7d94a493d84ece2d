"""How the CLI (and the demo) talk to the services: send a command and wait for its outcome event, or ask a query.

A command's outcome is the first event of the expected types that carries the command's correlation id (the
command's own message id: every message it causes inherits it). The watch on the events exchange is opened
before the command is published, so a fast answer cannot be missed.
"""

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar
from uuid import UUID

from bus.codec import decode
from bus.errors import RequestTimedOut, Unroutable
from bus.facade import Bus
from bus.ports import Binding, Delivery, Subscription, Transport
from schemas import Envelope, ErrorInfo, Event, Message, StrataError
from schemas.errors import FailedPrecondition, Transient
from services.cli.running import owner_of, require_running

E = TypeVar("E", bound=Event)
PRODUCER = "cli"


class CommandFailed(StrataError):
    """The service refused or failed the command; carries the failure event's error."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message, field=error.field)
        self.error = error
        self.code = error.code  # type: ignore[misc]  # the remote error's code, not this class's


class NoAnswer(Transient):
    """No outcome arrived in time: the service may be down or busy."""


def service_hint(command: Message) -> str:
    """Which daemon takes a message type, for error messages that say what to start."""
    owner = owner_of(command.message_type)
    start = owner.start if owner is not None else "strata run SERVICE"
    return f"is `{start}` (or `strata up`) running in this namespace?"


class EventWatch:
    """Records the events published on a transport, from `open` on, and waits for the ones asked for."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.events: list[Envelope] = []
        self._arrived = asyncio.Condition()
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        """Start recording (the transport must be started)."""
        self._subscription = await self.transport.watch([Binding("events", "#")], self._record)

    async def close(self) -> None:
        """Stop recording."""
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    async def _record(self, delivery: Delivery) -> None:
        try:
            envelope = decode(delivery.message)
        except StrataError:  # a message type this CLI does not know is none of its business
            return
        async with self._arrived:
            self.events.append(envelope)
            self._arrived.notify_all()

    def find(
        self, correlation_id: UUID | None, types: tuple[type[E], ...], where: Callable[[E], bool]
    ) -> Envelope | None:
        """The first recorded event of `types` in the correlation (any, if None) that satisfies `where`."""
        for envelope in self.events:
            payload = envelope.payload
            if correlation_id not in (None, envelope.correlation_id):
                continue
            if isinstance(payload, types) and where(payload):
                return envelope
        return None

    async def wait_for(
        self,
        correlation_id: UUID | None,
        types: tuple[type[E], ...],
        *,
        timeout: float,
        where: Callable[[E], bool] = lambda _: True,
    ) -> Envelope:
        """Wait for an event of `types` in the correlation (any, if None); raise NoAnswer after `timeout` s."""

        async def arrived() -> Envelope:
            async with self._arrived:
                while (found := self.find(correlation_id, types, where)) is None:
                    await self._arrived.wait()
                return found

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            names = ", ".join(model.message_type for model in types)
            raise NoAnswer(f"no {names} within {timeout:g}s") from None


class Client:
    """A started transport, a watch on its events and a Bus: `async with Client(transport) as client`."""

    def __init__(self, transport: Transport, *, owns_transport: bool = True, producer: str = PRODUCER) -> None:
        self.transport = transport
        self.producer = producer  # who sends, as the journal records it: `cli`, or the API's caller
        self.bus = Bus(transport)
        self.watch = EventWatch(transport)
        self.owns_transport = owns_transport

    async def __aenter__(self) -> Self:
        if self.owns_transport:
            await self.transport.start()
        try:
            await self.watch.open()
        except BaseException:
            if self.owns_transport:
                await self.transport.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.watch.close()
        if self.owns_transport:
            await self.transport.close()

    async def require_owner(self, message: Message) -> None:
        """Fail at once, naming it, if the service that takes `message` is not running (see services.cli.running)."""
        owner = owner_of(message.message_type)
        if owner is not None:
            await require_running(self.transport, [owner])

    async def publish(self, command: Message) -> Envelope:
        """Publish a command; a command no service takes, or whose service is not running, is refused with what to
        start."""
        await self.require_owner(command)
        envelope = Envelope.wrap(command, producer=self.producer)
        try:
            await self.bus.publish(envelope)
        except Unroutable:
            raise FailedPrecondition(
                f"no service takes {command.message_type}: {service_hint(command)}", field=None
            ) from None
        return envelope

    async def send(
        self,
        command: Message,
        success: tuple[type[Event], ...],
        failure: tuple[type[Event], ...],
        *,
        timeout: float,
        where: Callable[[Event], bool] = lambda _: True,
    ) -> Event:
        """Publish `command` and return its success event; raise CommandFailed with a failure event's error."""
        envelope = await self.publish(command)
        return await self.outcome(envelope, success, failure, timeout=timeout, where=where)

    async def outcome(
        self,
        envelope: Envelope,
        success: tuple[type[Event], ...],
        failure: tuple[type[Event], ...],
        *,
        timeout: float,
        where: Callable[[Event], bool] = lambda _: True,
    ) -> Event:
        """The success or failure event of a published command (see `send`)."""
        try:
            answer = await self.watch.wait_for(
                envelope.correlation_id, (*success, *failure), timeout=timeout, where=where
            )
        except NoAnswer as error:
            raise NoAnswer(f"{error.message}: {service_hint(envelope.payload)}") from None
        payload = answer.payload
        assert isinstance(payload, Event)  # wait_for only returns the event types it was given
        if isinstance(payload, failure):
            error_info = getattr(payload, "error", None)
            if isinstance(error_info, ErrorInfo):
                raise CommandFailed(error_info)
            raise CommandFailed(ErrorInfo(code="UNKNOWN", error_class=type(payload).__name__, message=answer.type))
        return payload

    async def ask(self, query: Message, answer: type[E], *, timeout: float) -> E:
        """Send a query by request/reply and return its answer."""
        await self.require_owner(query)
        envelope = Envelope.wrap(query, producer=self.producer)
        try:
            reply = await self.bus.request(envelope, timeout=timeout)
        except Unroutable:
            raise FailedPrecondition(f"no service answers {query.message_type}: {service_hint(query)}") from None
        except RequestTimedOut:
            raise NoAnswer(f"no answer to {query.message_type} within {timeout:g}s: {service_hint(query)}") from None
        if not isinstance(reply.payload, answer):
            raise NoAnswer(f"{query.message_type} was answered with {reply.type}, not {answer.message_type}")
        return reply.payload
