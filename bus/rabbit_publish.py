"""Publishing on RabbitMQ: persistent, `mandatory`, confirmed, with a deadline on every wait.

A publish waits for the broker through an outage up to `publish_outage_bound` seconds (then `BrokerUnavailable`),
and for its confirm up to `confirm_timeout` seconds once written (then `ConfirmTimedOut`, transient: the outbox
publishes the row again, and the consumers' inboxes absorb the duplicate if the broker had taken it after all).
An unroutable message raises `Unroutable`, a nack `PublishRejected`.
"""

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiormq
import structlog

from bus.errors import BrokerUnavailable, ConfirmTimedOut, PublishRejected, Unroutable
from bus.ports import HeaderValue, WireMessage
from bus.rabbit_batch import Publish, PublishCoalescer, write_publishes
from bus.rabbit_connection import CONNECTION_ERRORS
from bus.rabbit_wire import properties_of
from bus.settings import BusSettings
from schemas.errors import StrataError

log = structlog.get_logger(__name__)
PUBLISH_BATCH = 64  # messages written to the socket at once by publish_many

OpenChannel = Callable[[str, float], Awaitable[aiormq.Channel]]
"""Opens (or returns) the transport's channel of a role (`publisher`, `replier`) before a monotonic deadline."""


class RabbitPublisher:
    """The publishing half of `RabbitTransport`: every publish of the transport goes through it."""

    def __init__(self, settings: BusSettings, open_channel: OpenChannel, exchange: Callable[[str], str]) -> None:
        self._settings = settings
        self._open_channel = open_channel
        self._exchange = exchange
        self._coalescer = PublishCoalescer()

    async def publish_many(self, full: str, messages: Sequence[tuple[str, WireMessage]]) -> None:
        """Publish (routing key, message) pairs to the exchange `full` with many confirms outstanding."""
        deadline = time.monotonic() + self._settings.publish_outage_bound
        pending: deque[tuple[Sequence[tuple[str, WireMessage]], list[asyncio.Future[object]]]] = deque()
        in_flight = 0
        interrupted: list[tuple[str, WireMessage]] = []
        refused: list[tuple[StrataError, str]] = []

        async def settle_oldest() -> int:
            chunk, confirmations = pending.popleft()
            if await self._confirmed(confirmations):
                raise self._late(len(chunk))
            results = [_settled(confirmation) for confirmation in confirmations]
            for (routing_key, message), result in zip(chunk, results, strict=True):
                if isinstance(result, aiormq.exceptions.PublishError):
                    refused.append((Unroutable(f"no queue is bound to {full} for {routing_key!r}"), routing_key))
                elif isinstance(result, aiormq.exceptions.DeliveryError):
                    refused.append((PublishRejected(f"the broker refused {message.type} (nack)"), routing_key))
                elif isinstance(result, BaseException):
                    interrupted.append((routing_key, message))  # the connection went: publish it again below
            return len(chunk)

        # Fast path: batches written in one go, a window of confirms outstanding.
        for start in range(0, len(messages), PUBLISH_BATCH):
            chunk = messages[start : start + PUBLISH_BATCH]
            while pending and in_flight + len(chunk) > self._settings.publish_window:
                in_flight -= await settle_oldest()
            publishes = [(full, key, message.body, properties_of(message)) for key, message in chunk]
            try:
                confirmations = await write_publishes(await self._open_channel("publisher", deadline), publishes)
            except CONNECTION_ERRORS:
                interrupted.extend(chunk)
                continue
            pending.append((chunk, confirmations))
            in_flight += len(chunk)
        while pending:
            await settle_oldest()
        # Slow path, only after an interruption: one by one, each waiting for the broker up to the outage bound.
        for routing_key, message in interrupted:
            await self.publish_raw(full, routing_key, message)
        if refused:
            error, _ = refused[0]
            keys = sorted({key for _, key in refused})
            raise type(error)(
                f"{len(refused)} of {len(messages)} messages refused ({', '.join(keys)}): {error.message}"
            )

    async def publish_each(self, items: Sequence[tuple[str, str, WireMessage]]) -> list[BaseException | None]:
        """See `bus.ports.Transport.publish_each`; `items` name their exchanges in short."""
        outcomes: list[BaseException | None] = [None] * len(items)
        publishes: list[Publish] = []
        written: list[int] = []  # the index in `items` of each publish
        for index, (exchange, routing_key, message) in enumerate(items):
            try:
                full = self._exchange(exchange)
            except StrataError as error:
                outcomes[index] = error
                continue
            publishes.append((full, routing_key, message.body, properties_of(message)))
            written.append(index)
        if not publishes:
            return outcomes
        deadline = time.monotonic() + self._settings.publish_outage_bound
        try:
            # Every frame written at once, in order, and no task per message; the confirms are awaited together.
            confirmations = await write_publishes(await self._open_channel("publisher", deadline), publishes)
        except BrokerUnavailable as error:
            log.error("publish failed: the broker stayed away", messages=len(publishes), error=error.message)
            for index in written:
                outcomes[index] = error
            return outcomes
        except CONNECTION_ERRORS:
            confirmations = []  # nothing was written: all of them go the slow way
        late = await self._confirmed(confirmations)
        late_error = self._late(len(late)) if late else None
        again: list[tuple[int, str]] = []
        for position, (index, (full, routing_key, _, _)) in enumerate(zip(written, publishes, strict=True)):
            confirmation = confirmations[position] if confirmations else None
            if confirmation in late:
                outcome: BaseException | None = late_error
            else:
                outcome = _refusal(confirmation, full, routing_key, items[index][2])
            if outcome is _INTERRUPTED:
                again.append((index, full))
            else:
                outcomes[index] = outcome
        if again:  # rare: each message on its own, all waiting together for the broker up to the outage bound
            await self._publish_again(items, again, outcomes)
        return outcomes

    async def _publish_again(
        self,
        items: Sequence[tuple[str, str, WireMessage]],
        again: list[tuple[int, str]],
        outcomes: list[BaseException | None],
    ) -> None:
        """Publish the items at `again` (index, full exchange) one by one, their outcomes into `outcomes`."""
        results = await asyncio.gather(
            *(self.publish_raw(full, items[index][1], items[index][2]) for index, full in again),
            return_exceptions=True,
        )
        for (index, _), result in zip(again, results, strict=True):
            if result is not None and not isinstance(result, Exception):
                raise result
            outcomes[index] = result

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        message: WireMessage,
        extra_headers: Mapping[str, HeaderValue] | None = None,
        *,
        channel_kind: str = "publisher",
    ) -> None:
        """Publish to a full exchange name ('' is the default exchange), confirmed, mandatory, persistent."""
        properties = properties_of(message, extra_headers=dict(extra_headers) if extra_headers else None)
        deadline = time.monotonic() + self._settings.publish_outage_bound
        while True:
            try:
                channel = await self._open_channel(channel_kind, deadline)
            except BrokerUnavailable as error:
                log.error("publish failed: the broker stayed away", type=message.type, error=error.message)
                raise
            try:
                if channel.publisher_confirms:  # concurrent publishes share one socket write, each confirmed
                    outcome = self._coalescer.publish(channel, (exchange, routing_key, message.body, properties))
                    try:
                        await asyncio.wait_for(outcome, self._settings.confirm_timeout)
                    except TimeoutError:
                        raise self._late(1) from None
                else:
                    await channel.basic_publish(
                        message.body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=True,
                        wait=False,
                    )
                return
            except aiormq.exceptions.PublishError:
                raise Unroutable(
                    f"no queue is bound to {exchange or 'the default exchange'} for {routing_key!r}"
                ) from None
            except aiormq.exceptions.DeliveryError:
                raise PublishRejected(f"the broker refused {message.type} {message.message_id} (nack)") from None
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise Unroutable(f"exchange {exchange} does not exist") from None
            except CONNECTION_ERRORS as error:
                if time.monotonic() >= deadline:
                    log.error("publish failed: the broker stayed away", type=message.type, error=type(error).__name__)
                    raise BrokerUnavailable(
                        f"could not publish {message.type} within {self._settings.publish_outage_bound}s: "
                        f"{type(error).__name__}"
                    ) from None
                log.info("publish interrupted; retrying once reconnected", error=type(error).__name__)
                await asyncio.sleep(0.05)

    async def _confirmed(self, confirmations: "list[asyncio.Future[object]]") -> "set[asyncio.Future[object]]":
        """Wait for `confirmations` up to the confirm deadline; return those still unsettled then."""
        if not confirmations:
            return set()
        try:
            _, late = await asyncio.wait(confirmations, timeout=self._settings.confirm_timeout)
        except BaseException:
            for confirmation in confirmations:  # aiormq settles them later: retrieve, so asyncio does not warn
                confirmation.add_done_callback(_retrieve)
            raise
        for confirmation in late:
            confirmation.add_done_callback(_retrieve)
        return late

    def _late(self, count: int) -> ConfirmTimedOut:
        log.error("publish unconfirmed past its deadline", messages=count, seconds=self._settings.confirm_timeout)
        return ConfirmTimedOut(
            f"the broker did not confirm {count} message(s) within {self._settings.confirm_timeout:g}s "
            "(blocked or stalled)"
        )


_INTERRUPTED = BrokerUnavailable("interrupted")  # a sentinel: the channel or connection went before the confirm


def _refusal(
    confirmation: "asyncio.Future[object] | None", exchange: str, routing_key: str, message: WireMessage
) -> BaseException | None:
    """What a settled confirmation means for its message: None (confirmed), its error, or `_INTERRUPTED`."""
    if confirmation is None or confirmation.cancelled():
        return _INTERRUPTED
    error = confirmation.exception()
    if error is None:
        return None
    if isinstance(error, aiormq.exceptions.PublishError):
        return Unroutable(f"no queue is bound to {exchange} for {routing_key!r}")
    if isinstance(error, aiormq.exceptions.DeliveryError):
        return PublishRejected(f"the broker refused {message.type} {message.message_id} (nack)")
    return _INTERRUPTED


def _settled(confirmation: "asyncio.Future[object]") -> object:
    """A settled confirmation's result, or its error (cancelled: the connection went)."""
    if confirmation.cancelled():
        return asyncio.CancelledError()
    return confirmation.exception() or confirmation.result()


def _retrieve(confirmation: "asyncio.Future[object]") -> None:
    if not confirmation.cancelled():
        confirmation.exception()
