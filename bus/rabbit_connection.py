"""One AMQP connection kept alive by our own loop, not aio-pika's robust connection.

aio-pika's robust connection restores only topology objects still referenced (aio-pika #594), has been seen not
to re-register consumers after a broker restart (#231) and does not recover a server-side cancel (#334). This loop
owns the whole recovery instead: on every (re)connection it calls `on_connect`, which re-declares the topology the
transport holds and re-attaches every consumer on fresh channels. Delivery tags from before are dead with their
channel; their messages come again, flagged redelivered. Both connect loops (the first, bounded by a timeout, and
the reconnect, until closed) are tenacity policies: exponential back-off up to `reconnect_delay_max`.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiormq
import structlog
from aiormq.abc import AbstractConnection
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)
from yarl import URL

from bus.errors import BrokerUnavailable

log = structlog.get_logger(__name__)

OnConnect = Callable[[AbstractConnection], Awaitable[None]]
# What a dropped or refused connection raises in aiormq and asyncio; never seen above this module's users.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parsed = URL(url)
    return str(parsed.with_password(None)) if parsed.password else str(parsed)


class RabbitConnection:
    """Connects, notices the loss of the connection, and reconnects with back-off until closed."""

    def __init__(self, url: str, *, name: str, on_connect: OnConnect, reconnect_delay_max: float = 5.0) -> None:
        self._url = url
        self._name = name
        self._on_connect = on_connect
        self._delay_max = reconnect_delay_max
        self._connection: AbstractConnection | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self._supervisor: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def is_open(self) -> bool:
        """Whether the connection is up now (False while it reconnects, and once closed)."""
        connection = self._connection
        return not self._closed and self._ready.is_set() and connection is not None and not connection.is_closed

    @property
    def where(self) -> str:
        """The broker's address without credentials."""
        return redacted(self._url)

    async def start(self, timeout: float) -> None:
        """Connect (retrying up to `timeout` seconds) and start watching the connection."""
        connect = AsyncRetrying(
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            wait=wait_exponential(multiplier=0.1, max=self._delay_max),
            stop=stop_before_delay(timeout),  # no pause that would end past the timeout
            reraise=True,
        )
        try:
            await connect(self._connect)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"RabbitMQ at {self.where} is unreachable: {_describe(error)}") from None
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"amqp-{self._name}")

    async def current(self, deadline: float) -> AbstractConnection:
        """The open connection; waits for a reconnect until `deadline` (monotonic), then raises BrokerUnavailable."""
        while True:
            connection = self._connection
            if self._ready.is_set() and connection is not None and not connection.is_closed:
                return connection
            if self._closed:
                raise BrokerUnavailable("the transport is closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(f"RabbitMQ at {self.where} stayed unreachable; giving up")
            try:
                await asyncio.wait_for(self._ready.wait(), min(remaining, 0.05))
            except TimeoutError:
                continue

    async def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closed = True
        self._ready.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._connection is not None and not self._connection.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS):  # already going away; nothing to release
                await self._connection.close()
        self._connection = None

    async def _connect(self) -> None:
        connection = await aiormq.connect(self._url, client_properties={"connection_name": self._name})
        try:
            await self._on_connect(connection)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._ready.set()

    async def _supervise(self) -> None:
        while not self._closed:
            connection = self._connection
            if connection is None:
                return
            await asyncio.wait([connection.closing])
            if self._closed:
                return
            self._ready.clear()
            log.warning("lost the connection to RabbitMQ; reconnecting", broker=self.where, connection=self._name)
            reconnect = AsyncRetrying(
                retry=retry_if_exception_type(CONNECTION_ERRORS),
                wait=wait_exponential(multiplier=0.05, max=self._delay_max),
                stop=lambda _: self._closed,
                before_sleep=self._failed_reconnect,
                reraise=True,
            )
            try:
                await reconnect(self._connect)
            except CONNECTION_ERRORS:
                return  # closed while reconnecting
            self.reconnects += 1
            log.info("reconnected to RabbitMQ", broker=self.where, connection=self._name)

    def _failed_reconnect(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_in = state.next_action.sleep if state.next_action is not None else None
        log.warning("reconnect failed", broker=self.where, error=_describe(error) if error else "", retry_in=retry_in)


def _describe(error: BaseException) -> str:
    # The driver's text names host and port at most; the URL (with its password) is never part of it.
    return f"{type(error).__name__}: {error}"[:300]
