"""For services that take part in sagas: answer a step, and refuse commands that a saga's locks fence off.

A participant answers a saga's command by emitting, in the same unit of work as its state change, a reply wrapped
with the command as its cause (so it carries the saga id and the step). The command's message id is the
idempotency key: the inbox already makes a redelivered command a no-op.

`check_fencing` is the one check a participant runs before it touches a resource: a command with a token older than
one seen for the resource is refused (a newer saga holds it), and so is a command with no token at all on a
resource a saga holds now (read from the saga locks, `sagas.locks`, in the same database): a STUCK saga's resources
stay as they are until an operator acts.
"""

from collections.abc import Sequence
from typing import Any

from bus.ports import UnitOfWork
from sagas.postgres_store import DEFAULT_SCHEMA
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


SAGA_LOCKS = f"{DEFAULT_SCHEMA}.locks"


async def check_fencing(
    connection: Any, resources: Sequence[str], token: int | None, *, table: str, saga_locks: str = SAGA_LOCKS
) -> None:  # connection: the unit of work's asyncpg connection
    """Refuse (Aborted) a command on `resources` that a saga's locks fence off; remember a newer token.

    With a token, each resource's highest token is kept in the participant's `table` (FENCING_TABLE) and an older
    one is refused. Without one, the command is refused if a saga holds any of the resources (an unexpired lease,
    or a STUCK saga's); a deployment without the saga tables fences nothing.
    """
    if token is not None:
        for resource in sorted(set(resources)):
            await check_fencing_token(connection, resource, token, table=table)
        return
    if not resources or not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", saga_locks):
        return
    held = await connection.fetchrow(
        f"SELECT resource, holder FROM {saga_locks} WHERE resource = ANY($1::text[]) AND holder IS NOT NULL "
        "AND expires_at > now() ORDER BY resource LIMIT 1",
        list(resources),
    )
    if held is not None:
        raise Aborted(
            f"{held['resource']} is held by saga {held['holder']}; a command without its fencing token may not "
            "change it (wait for the saga, or act on it with `strata saga`)",
            field="fencing_token",
        )


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
