"""Translation of asyncpg's errors into strata's own, so that no driver exception leaves this adapter.

Connection loss, serialization failures, deadlocks and a server that is starting or shutting down are `Transient`:
the same transaction may succeed when retried. Everything else is permanent. Messages carry the server's short
text only, never its DETAIL (which quotes row values, and values may be secrets).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from schemas.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    StrataError,
    Transient,
)

# SQLSTATE classes and codes whose failures pass: retrying the whole transaction may succeed.
_TRANSIENT_CLASSES = ("08", "53", "57")  # connection exception, insufficient resources, operator intervention
_TRANSIENT_CODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_ERROR_BY_CODE: dict[str, type[StrataError]] = {
    "23505": AlreadyExists,  # unique violation
    "23503": FailedPrecondition,  # foreign key violation: the referenced object is missing
    "42P01": FailedPrecondition,  # undefined table: migrations not applied
    "3F000": FailedPrecondition,  # invalid schema name: migrations not applied
}
_MISSING_OBJECT_CODES = {"42P01", "3F000"}
_INVALID_CLASSES = ("22", "23")  # data exception, other integrity constraint violations


def translate(error: BaseException) -> StrataError:
    """Return the strata error that `error` (raised by asyncpg or the socket under it) means."""
    if isinstance(error, StrataError):
        return error
    if isinstance(error, asyncpg.PostgresError):
        return _translate_server_error(error)
    connection_gone = isinstance(error, asyncpg.InterfaceError) and "closed" in str(error)
    # asyncpg's client state machine can be left mid-operation by a connection the server cut.
    if isinstance(error, OSError | TimeoutError | asyncpg.InternalClientError) or connection_gone:
        # The connection is gone or never came: the server may be restarting.
        return Transient(f"PostgreSQL connection failed: {type(error).__name__}: {error}")
    if isinstance(error, asyncpg.InterfaceError):
        return StrataError(f"PostgreSQL client misuse: {error}")
    return StrataError(f"PostgreSQL: {type(error).__name__}")


def _translate_server_error(error: asyncpg.PostgresError) -> StrataError:
    code = str(error.sqlstate or "")
    text = f"PostgreSQL: {error.args[0] if error.args else type(error).__name__} (SQLSTATE {code})"
    if code in _TRANSIENT_CODES or code[:2] in _TRANSIENT_CLASSES:
        error_class: type[StrataError] = Transient
    elif code in _ERROR_BY_CODE:
        error_class = _ERROR_BY_CODE[code]
        if code in _MISSING_OBJECT_CODES:
            text += "; are the migrations applied?"
    elif code[:2] in _INVALID_CLASSES:
        error_class = InvalidArgument
    else:
        error_class = StrataError
    return error_class(text)


def is_driver_error(error: BaseException) -> bool:
    """Tell whether `error` comes from the driver or the socket (and must be translated before it leaves)."""
    return isinstance(
        error, asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError | OSError | TimeoutError
    )


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise any driver error raised inside the block as the strata error it means."""
    try:
        yield
    except StrataError:
        raise
    except Exception as error:
        if is_driver_error(error):
            # The driver's exception is not chained: its DETAIL may quote row values.
            raise translate(error) from None
        raise
