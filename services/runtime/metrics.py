"""The metrics every daemon exposes: the messages it handles, and the bus it works on (outbox, dead letters).

Every message series carries a `service` label, so that `strata up` (every daemon in one process, one registry) and one
daemon per process expose the same names. Create one `MessageMetrics` per registry and share it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bus.ports import DeadLetters
from bus.postgres import OutboxRelay


class MessageMetrics:
    """Counts and times message handling, per service and wire type, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._handled = Counter(
            "strata_messages_handled",
            "Messages handled, by service, wire type and outcome.",
            ["service", "type", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            "strata_message_handling_seconds",
            "Time from decoding a message to committing its effects.",
            ["service", "type"],
            registry=registry,
        )
        self._in_flight = Gauge(
            "strata_messages_in_flight", "Messages being handled now.", ["service"], registry=registry
        )

    def observe(self, consumer: str, message_type: str, outcome: str, seconds: float) -> None:
        """Record one message a consumer handled (called by the consumers of a transport it was added to)."""
        self._handled.labels(consumer, message_type, outcome).inc()
        self._seconds.labels(consumer, message_type).observe(seconds)

    def record(self, service: str, message_type: str, outcome: str) -> None:
        """Count one message that ended with `outcome` (`ok`, `retried`, `dead`, `duplicate`)."""
        self._handled.labels(service, message_type, outcome).inc()

    @contextmanager
    def handling(self, service: str, message_type: str) -> Iterator[None]:
        """Time the block as the handling of one message, and count it in flight meanwhile."""
        gauge = self._in_flight.labels(service)
        gauge.inc()
        started = perf_counter()
        try:
            yield
        finally:
            self._seconds.labels(service, message_type).observe(perf_counter() - started)
            gauge.dec()


class BusMetrics:
    """What every daemon shows of the bus, read at scrape time: the outbox backlog and its age, the dead letters."""

    def __init__(self, registry: CollectorRegistry, relay: OutboxRelay, dead_letters: DeadLetters | None) -> None:
        self._relay = relay
        self._dead_letters = dead_letters
        self._backlog = Gauge("strata_outbox_backlog", "Outbox rows not yet published.", registry=registry)
        self._age = Gauge(
            "strata_outbox_oldest_seconds", "How long the oldest unpublished outbox row has waited.", registry=registry
        )
        self._dead = Gauge("strata_dead_letters", "Messages waiting in the dead-letter queue.", registry=registry)

    async def refresh(self) -> None:
        """Read the figures now."""
        rows, oldest_seconds = await self._relay.backlog()
        self._backlog.set(rows)
        self._age.set(oldest_seconds)
        if self._dead_letters is not None:
            self._dead.set(await self._dead_letters.count_dead())
