"""For services that take part in sagas: answer a step, and refuse commands with a stale fencing token.

A participant answers a saga's command by emitting, in the same unit of work as its state change, a reply wrapped
with the command as its cause (so it carries the saga id and the step). The command's message id is the
idempotency key: the inbox already makes a redelivered command a no-op.
"""

from typing import Any

from bus.ports import UnitOfWork
from schemas import Aborted, Envelope, Event, StrataError
from schemas.sagas import JsonObject, StepFailed, StepSucceeded


def reply_success(
    uow: UnitOfWork, command: Envelope, result: Event | JsonObject | None = None, *, producer: str
) -> None:
    """Tell the saga that its step succeeded; `result` is a domain event or a JSON object."""
    payload = result if isinstance(result, Event) else StepSucceeded(result=result or {})
    uow.emit(Envelope.wrap(payload, cause=command, producer=producer))


def reply_failure(uow: UnitOfWork, command: Envelope, error: StrataError, *, producer: str) -> None:
    """Tell the saga that its step failed (TRANSIENT errors may be retried by the saga's policy)."""
    uow.emit(Envelope.wrap(StepFailed(error=error.info()), cause=command, producer=producer))


FENCING_TABLE = """CREATE TABLE IF NOT EXISTS {table} (resource text PRIMARY KEY, token bigint NOT NULL)"""


async def check_fencing_token(
    connection: Any, resource: str, token: int | None, *, table: str = "fencing"
) -> None:  # connection: the unit of work's asyncpg connection
    """The same check in the participant's own table, inside its transaction (create it with FENCING_TABLE)."""
    if token is None:
        raise Aborted(f"a command on {resource} carries no fencing token", field="fencing_token")
    accepted = await connection.fetchval(
        f"INSERT INTO {table} (resource, token) VALUES ($1, $2) "
        f"ON CONFLICT (resource) DO UPDATE SET token = EXCLUDED.token WHERE {table}.token <= EXCLUDED.token "
        "RETURNING token",
        resource,
        token,
    )
    if accepted is None:
        raise Aborted(f"stale fencing token {token} for {resource}", field="fencing_token")
