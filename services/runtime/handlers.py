"""The handler-table convention: every service's handlers take `(message, envelope, uow, context)`, the service's
context last (its `Storage`, `Agent`, `SnapshotDeps`, ...); its `handlers.py` pairs message types with them in
`COMMAND_HANDLERS` and `EVENT_HANDLERS`, and its bootstrap binds the context with `bind_context`."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from bus.ports import Handler, UnitOfWork, deferred_writes, has_deferred_writes
from schemas import Envelope, Message

C = TypeVar("C")
ContextHandler = Callable[[Any, Envelope, UnitOfWork, C], Awaitable[Message | None]]
"""`handler(message, envelope, uow, context)`; `Any`: each handler types its own message class."""


def bind_context(handlers: Mapping[type[Message], ContextHandler[C]], context: C) -> dict[type[Message], Handler]:
    """The handler table the consumer runtime takes: every handler with `context` bound as its fourth argument."""
    return {model: _bound(handler, context) for model, handler in handlers.items()}


def _bound(handler: ContextHandler[C], context: C) -> Handler:
    async def bound(message: Message, envelope: Envelope, uow: UnitOfWork) -> Message | None:
        return await handler(message, envelope, uow, context)

    return deferred_writes(bound) if has_deferred_writes(handler) else bound
