"""How the image service's commands are answered: at once with their outcome event, or refused with their
`...Failed` event naming the field at fault. Every check comes before the first write, so a refusal changes nothing."""

from collections.abc import Awaitable, Callable

import structlog

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.errors import StrataError, Transient
from services.image.context import PRODUCER

log = structlog.get_logger(__name__)


def emit(uow: UnitOfWork, envelope: Envelope, message: Message) -> None:
    """Answer `envelope` with `message` (or send the command it leads to), in its lineage."""
    uow.emit(Envelope.wrap(message, cause=envelope, producer=PRODUCER))


async def refusing(
    uow: UnitOfWork, envelope: Envelope, failed: Callable[[StrataError], Event], body: Callable[[], Awaitable[None]]
) -> None:
    """Run `body`; a refusal (any strata error but Transient, raised before its first write) is answered."""
    try:
        await body()
    except Transient:
        raise
    except StrataError as error:
        log.info("image command refused", type=envelope.type, code=error.code, error=error.message)
        emit(uow, envelope, failed(error))
