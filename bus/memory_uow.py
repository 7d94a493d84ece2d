"""MemoryUnitOfWorkFactory: an inbox and an outbox in memory, for the embedded demo and fast tests.

The inbox row is recorded and the emitted messages published only when the handler succeeded; a failed handler
leaves no trace, so its retry runs as if for the first time. There is no state to commit: `connection` is None.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from bus.facade import Bus
from schemas import Envelope
from schemas.errors import Unimplemented


class MemoryUnitOfWork:
    """Collects what a handler emits until its unit of work ends well."""

    def __init__(self) -> None:
        self.emitted: list[Envelope] = []

    @property
    def connection(self) -> None:
        """No database: state lives in the service's own memory."""
        return None

    def emit(self, envelope: Envelope) -> None:
        """Publish `envelope` once the handler has succeeded."""
        self.emitted.append(envelope)

    def defer(self, statement: str, *args: Any) -> None:
        """Refused: there is no database to write to."""
        raise Unimplemented("the in-memory unit of work has no database: a deferred statement needs PostgreSQL")


class _MemoryUnitOfWorkContext:
    def __init__(self, factory: "MemoryUnitOfWorkFactory", consumer: str, incoming: Envelope | None) -> None:
        self._factory = factory
        self._key = (consumer, incoming.message_id) if incoming is not None else None
        self._unit: MemoryUnitOfWork | None = None
        self.duplicate = False

    async def __aenter__(self) -> MemoryUnitOfWork | None:
        if self._key is not None and self._key in self._factory.inbox:
            self.duplicate = True
            return None
        self._unit = MemoryUnitOfWork()
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        if (exc_info and exc_info[0] is not None) or self._unit is None:
            return
        # Publish first: if it fails the message is retried, and the inbox does not yet call it a duplicate.
        await self._factory.bus.publish_many(self._unit.emitted)
        if self._key is not None:
            self._factory.inbox.add(self._key)
        self._factory.committed.extend(self._unit.emitted)


class MemoryUnitOfWorkFactory:
    """Opens in-memory units of work that publish through `bus` after the handler succeeded."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.inbox: set[tuple[str, UUID]] = set()
        self.committed: list[Envelope] = []

    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> _MemoryUnitOfWorkContext:
        """Open a unit of work; it yields None if `consumer` already processed `incoming` (`lazy` changes nothing:
        nothing is written before the end anyway)."""
        return _MemoryUnitOfWorkContext(self, consumer, incoming)

    def emitted_of_type(self, type_name: str) -> Sequence[Envelope]:
        """The committed messages of one wire type, in order (for tests and the demo's story)."""
        return [envelope for envelope in self.committed if envelope.type == type_name]
