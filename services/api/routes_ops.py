"""Operator actions on sagas (retry, skip, abort, compensate: `strata saga ACTION`, recorded with the caller as the
actor), the cancel of an operation (the compensation of the saga its command started), and the dead letters (list,
preview, re-drive, purge: `strata dlq`), bodies masked as the CLI shows them."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from bus.ports import DeadLetters
from bus.postgres.errors import translated_errors
from sagas.operator import Action, act
from sagas.postgres_store import PostgresSagaStore
from sagas.records import SagaStatus
from schemas.errors import FailedPrecondition, NotFound
from services.api.audit import record
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.operations import Operation
from services.cli.dlq import _as_dict as dead_letter_as_dict

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
JsonObject = dict[str, Any]  # Any: JSON values


class SagaAction(StrEnum):
    """What an operator may do to a saga."""

    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"
    COMPENSATE = "compensate"


class ActRequest(BaseModel):
    """Why the operator acts (kept in the saga's journal)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class ActOut(BaseModel):
    """What was done."""

    saga_id: str
    action: str
    done: str
    actor: str


class DeadLetterIds(BaseModel):
    """The dead letters to act on; all of them only when `all` is true (never by omission)."""

    model_config = ConfigDict(extra="forbid")

    message_ids: list[str] = Field(default_factory=list, max_length=10_000)
    all: bool = False


async def act_on_saga(request: Request, key: ApiKey, saga_id: UUID, action: SagaAction, reason: str) -> JsonObject:
    """Apply an operator action, as `key`; NotFound or FailedPrecondition change nothing."""
    context = context_of(request)
    async with PostgresSagaStore(context.pool, schema=context.saga_schema).session() as session:
        done = await act(session, saga_id, Action(action.value), actor=key.actor, reason=reason, now=datetime.now(UTC))
    await record(context.pool, key.actor, f"saga.{action.value}", str(saga_id), reason=reason, done=done)
    return {"saga_id": str(saga_id), "action": action.value, "done": done, "actor": key.actor}


@router.post("/sagas/{saga_id}/{action}", response_model=ActOut, tags=["sagas"])
async def saga_action(
    request: Request, key: Operator, saga_id: UUID, action: SagaAction, body: ActRequest
) -> JsonObject:
    """Retry or skip a STUCK saga's failed step, abort a saga (locks released), or compensate it."""
    return await act_on_saga(request, key, saga_id, action, body.reason)


class CancelOut(BaseModel):
    """A cancel under way: the saga is compensated; the operation ends failed once what it did is undone."""

    operation_id: str
    saga_id: str
    done: str
    actor: str


CANCELLABLE = (SagaStatus.RUNNING, SagaStatus.STUCK)


async def _saga_of(request: Request, operation: Operation) -> UUID:
    """The saga the operation's command started, while it can still be compensated; else why it cannot."""
    if operation.status != "running":
        raise FailedPrecondition(f"operation {operation.operation_id} already {operation.status}: nothing to cancel")
    if operation.correlation_id is None:
        raise FailedPrecondition("its command is not sent yet: ask again in a moment", field="operation_id")
    context = context_of(request)
    with translated_errors():
        rows = await context.pool.fetch(
            f"SELECT saga_id, status FROM {context.saga_schema}.instances WHERE correlation_id = $1 "
            "ORDER BY created_at",
            operation.correlation_id,
        )
    if not rows:
        raise FailedPrecondition(
            f"a {operation.kind} runs no saga (its service carries it out as one step): it cannot be cancelled",
            field="operation_id",
        )
    live = [row["saga_id"] for row in rows if row["status"] in CANCELLABLE]
    if not live:
        raise FailedPrecondition(f"its saga is {rows[0]['status']}: only a running or stuck one is cancelled")
    saga_id: UUID = live[0]
    return saga_id


@router.post("/operations/{operation_id}/cancel", status_code=202, response_model=CancelOut, tags=["operations"])
async def cancel_operation(request: Request, key: Operator, operation_id: UUID, body: ActRequest) -> JsonObject:
    """Cancel a running operation whose command started a saga (a migration, a backup, a restore, a VM snapshot or
    revert): the saga is compensated, undoing what it did, even past its pivot, and the operation then ends failed.
    409 when there is nothing to undo that way: an operation already ended, or one its service does in one step
    (a volume created, a pool added), or a saga already compensating or ended."""
    operation = await context_of(request).operations.get(operation_id)
    saga_id = await _saga_of(request, operation)
    reason = f"cancel of operation {operation_id}" + (f": {body.reason}" if body.reason else "")
    acted = await act_on_saga(request, key, saga_id, SagaAction.COMPENSATE, reason)
    operation.note("cancel", saga_id=str(saga_id), actor=key.actor)
    return {"operation_id": str(operation_id), "saga_id": str(saga_id), "done": acted["done"], "actor": key.actor}


def dead_letters(request: Request) -> DeadLetters:
    """The transport's dead letters; FailedPrecondition on a transport that keeps none."""
    transport = context_of(request).transport
    if not isinstance(transport, DeadLetters):
        raise FailedPrecondition("this bus keeps no dead letters")
    return transport


@router.get("/dead-letters", tags=["dead-letters"])
async def list_dead_letters(
    request: Request, key: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[JsonObject]:
    """Dead letters, oldest first, with why each died (no bodies)."""
    return [dead_letter_as_dict(letter, with_body=False) for letter in await dead_letters(request).list_dead(limit)]


@router.get("/dead-letters/{message_id}", tags=["dead-letters"])
async def preview_dead_letter(request: Request, key: Viewer, message_id: str) -> JsonObject:
    """One dead letter in full, secrets masked: what a re-drive would send back, and to which queue."""
    for letter in await dead_letters(request).list_dead(100_000):
        if letter.message.message_id == message_id:
            return dead_letter_as_dict(letter, with_body=True)
    raise NotFound(f"no dead letter {message_id}", field="message_id")


def _chosen(body: DeadLetterIds) -> list[str] | None:
    if bool(body.message_ids) == body.all:
        raise FailedPrecondition("name the message ids, or set all (not both)", field="message_ids")
    return None if body.all else body.message_ids


@router.post("/dead-letters/redrive", tags=["dead-letters"])
async def redrive_dead_letters(request: Request, key: Operator, body: DeadLetterIds) -> dict[str, int]:
    """Send dead letters back to the queue they came from, attempts reset."""
    chosen = _chosen(body)
    moved = await dead_letters(request).redrive_dead(chosen)
    await record(
        context_of(request).pool,
        key.actor,
        "dead_letters.redrive",
        "all" if chosen is None else ",".join(chosen),
        count=moved,
    )
    return {"redriven": moved}


@router.post("/dead-letters/purge", tags=["dead-letters"])
async def purge_dead_letters(request: Request, key: Operator, body: DeadLetterIds) -> dict[str, int]:
    """Delete dead letters for good."""
    chosen = _chosen(body)
    removed = await dead_letters(request).purge_dead(chosen)
    await record(
        context_of(request).pool,
        key.actor,
        "dead_letters.purge",
        "all" if chosen is None else ",".join(chosen),
        count=removed,
    )
    return {"purged": removed}
