"""structlog configuration: JSON lines with the ids of the message being handled, and secrets redacted.

The consumer binds `message_id`, `correlation_id`, `saga_id` (and `step`) with `bound_message` while it handles a
message; every line logged meanwhile, in any module, carries them (contextvars follow the asyncio task). The
redaction processor runs last before rendering, so no call site can leak a password by mistake: any key that
looks like a secret has its value replaced, at any depth, and a URL's password is masked wherever it appears.
"""

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.envelope import Envelope

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|private[_-]?key|access[_-]?key|api[_-]?key|auth|cookie|"
    r"session[_-]?id|signature|^config$",
    re.IGNORECASE,
)
# Keys that look like secrets by name but are not: a fencing token is a public counter.
_NOT_SECRET = frozenset({"fencing_token"})
# A password may hold an unescaped '/' (S3 secret keys do): better to mask a port and path by mistake than leak.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]+)@", re.I)
_MAX_DEPTH = 8


def is_secret_key(key: str) -> bool:
    """Tell whether a field called `key` holds a secret (a password, a token, a plugin's config)."""
    return key not in _NOT_SECRET and _SECRET_KEY.search(key) is not None


def mask_url_passwords(text: str) -> str:
    """Replace the password of every `scheme://user:password@` in `text`."""
    return _URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:{REDACTED}@", text)


# Log values are arbitrary by nature: whatever a call site passes as a keyword.
def redact(value: Any, depth: int = 0) -> Any:
    """Return `value` with secret-looking keys' values replaced and URL passwords masked, at any depth."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_key(key) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        return mask_url_passwords(value)
    return value


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
