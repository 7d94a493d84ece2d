"""structlog configuration: JSON lines with the ids of the message being handled, and secrets redacted.

The consumer binds `message_id`, `correlation_id`, `saga_id` (and `step`) with `bound_message` while it handles a
message; every line logged meanwhile, in any module, carries them (contextvars follow the asyncio task). The
redaction processor runs last before rendering, so no call site can leak a password by mistake: any key that
looks like a secret has its value replaced, at any depth, and a URL's password is masked wherever it appears (the
one redaction path of `schemas.redact`, which the journal and the CLI use too).
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.envelope import Envelope
from schemas.redact import REDACTED, is_secret_key, redact


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every secret in the event before it is rendered."""
    return {key: REDACTED if is_secret_key(key) else redact(value) for key, value in event_dict.items()}


def configure_logging(
    service: str, *, level: str = "INFO", json: bool = True, stream: TextIO | None = None
) -> structlog.typing.FilteringBoundLogger:
    """Configure structlog for a daemon and return its logger, with `service` bound on every line."""
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=True) if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind(service=service)
    return logger


@contextmanager
def bound_message(envelope: Envelope) -> Iterator[None]:
    """Bind the ids of the message being handled to every log line written inside the block."""
    ids: dict[str, object] = {
        "message_id": str(envelope.message_id),
        "message_type": envelope.type,
        "correlation_id": str(envelope.correlation_id),
    }
    if envelope.saga_id is not None:
        ids["saga_id"] = str(envelope.saga_id)
    if envelope.step is not None:
        ids["step"] = envelope.step
    with structlog.contextvars.bound_contextvars(**ids):
        yield
