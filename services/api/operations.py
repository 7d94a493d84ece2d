"""Long operations (202 Accepted): one runs as a task of the API process, is recorded in `api.operations`, and is
polled (GET /operations/ID) or followed as Server-Sent Events (GET /operations/ID/events).

Its progress is every event that carries the command's correlation id (the storage service's state changes, a
saga's steps, the agent's copy progress), as it arrives on the bus; its outcome is the command's success or failure
event, as the CLI waits for it. The API daemon's consumer records outcomes too (`outcomes`), so a row is finished
even if the process that started it stopped meanwhile.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from pydantic import BaseModel

from bus.postgres.errors import translated_errors
from bus.postgres.pool import Pool
from schemas import Envelope, Event, StrataError
from schemas.errors import Aborted, NotFound
from services.api.errors import described
from services.api.outcomes import is_recorded
from services.cli.sending import Client

log = structlog.get_logger(__name__)
SCHEMA = "api"
KEEP_FINISHED = 1000  # finished operations kept in memory for polling; older ones are read from the table
HEARTBEAT_SECONDS = 30.0
ABANDONED_AFTER = timedelta(seconds=4 * HEARTBEAT_SECONDS)
ABANDONED = described(
    Aborted(
        "the API process that ran this operation stopped before it ended; what it had sent may have taken effect: "
        "look at the resource"
    )
)


@dataclass
class Operation:
    """One long operation as its caller sees it."""

    operation_id: UUID
    kind: str
    target: str
    actor: str
    status: str = "running"
    correlation_id: UUID | None = None
    awaiting: list[str] | None = None  # the outcome types the consumer records (see `Tracker.sent`)
    progress: list[dict[str, Any]] = field(default_factory=list)  # Any: JSON values
    result: dict[str, Any] | None = None  # Any: JSON values of the outcome event
    error: dict[str, Any] | None = None  # Any: JSON values (class, code, message, field)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def public(self) -> dict[str, Any]:  # Any: JSON values
        """The operation resource."""
        return {
            "operation_id": str(self.operation_id),
            "kind": self.kind,
            "target": self.target,
            "actor": self.actor,
            "status": self.status,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    def note(self, what: str, **detail: Any) -> None:  # Any: JSON values
        """Add a progress entry and wake the followers."""
        self.progress.append({"at": datetime.now(UTC).isoformat(), "event": what, **detail})
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Tracker:
    """What an operation's work reports to: the command it sent (its correlation) and what it hears meanwhile."""

    def __init__(self, operation: Operation, operations: "Operations") -> None:
        self.operation = operation
        self.operations = operations
        self.followers: list[asyncio.Task[None]] = []

    async def sent(self, client: Client, envelope: Envelope, awaiting: tuple[type[Event], type[Event]] | None) -> None:
        """The command was published: record its correlation and report every event of it until the work ends.

        `awaiting` (success, failure): the command's outcome ends the operation, and the consumer records it on the
        row even if this process stops first. None: the work goes on after the outcome (this process's own)."""
        if awaiting is not None and not is_recorded(*awaiting):
            raise RuntimeError(
                f"{awaiting[0].__name__}/{awaiting[1].__name__} is not recorded by the API's consumer: add the pair "
                "to services.api.outcomes.RECORDED"
            )
        self.operation.awaiting = [each.message_type for each in awaiting] if awaiting else None
        self.operation.correlation_id = envelope.correlation_id
        self.operation.note("sent", type=envelope.type, message_id=str(envelope.message_id))
        await self.operations.correlate(self.operation)
        self.followers.append(asyncio.create_task(self._follow(client, envelope.correlation_id)))

    async def _follow(self, client: Client, correlation_id: UUID) -> None:
        heard: set[int] = set()  # the payloads reported, by identity (the watch keeps them alive)
        while self.operation.status == "running":
            try:
                found = await client.watch.wait_for(
                    correlation_id, (Event,), timeout=3600, where=lambda event: id(event) not in heard
                )
            except StrataError:
                return
            heard.add(id(found.payload))
            self.operation.note("heard", type=found.type, summary=_summary(found.payload))


def _summary(payload: object) -> dict[str, Any]:  # Any: JSON values
    """What a progress entry says of an event: its small fields (state, step, bytes), never a config."""
    if not isinstance(payload, BaseModel):
        return {}
    dumped = payload.model_dump(mode="json", exclude={"config"})
    return {key: value for key, value in dumped.items() if isinstance(value, str | int | float | bool) or value is None}


# The row, failed first when no consumer will finish it and no process has said for a while that it runs it.
ABANDON_AND_READ = f"""
WITH abandoned AS (
    UPDATE {SCHEMA}.operations SET status = 'failed', error = $2::jsonb, finished_at = now()
    WHERE operation_id = $1 AND status = 'running' AND awaiting IS NULL AND alive_at < now() - $3::interval
    RETURNING *
)
SELECT * FROM abandoned
UNION ALL
SELECT * FROM {SCHEMA}.operations WHERE operation_id = $1 AND NOT EXISTS (SELECT FROM abandoned)
"""

Work = Callable[[Tracker], Awaitable[BaseModel | dict[str, Any]]]  # Any: JSON values


class Operations:
    """The operations of this process, and the table that outlives it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.running: dict[UUID, Operation] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Future[None] | None = None

    def spawn(self, coroutine: Awaitable[None]) -> None:
        """Run a background part of an operation; it is cancelled when the daemon stops."""
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, kind: str, target: str, actor: str, work: Work) -> Operation:
        """Record an operation and run `work` in the background; return it at once (for a 202)."""
        operation = Operation(uuid4(), kind, target, actor)
        with translated_errors():
            await self.pool.execute(
                f"INSERT INTO {SCHEMA}.operations (operation_id, kind, target, actor, status) "
                f"VALUES ($1, $2, $3, $4, 'running')",
                operation.operation_id,
                kind,
                target,
                actor,
            )
        self.running[operation.operation_id] = operation
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.ensure_future(self._beat())
        self.spawn(self._run(operation, work))
        log.info("operation started", operation_id=str(operation.operation_id), kind=kind, actor=actor)
        return operation

    async def correlate(self, operation: Operation) -> None:
        """Record the correlation id of the operation's command (the consumer finds its outcome by it)."""
        with translated_errors():
            await self.pool.execute(
                f"UPDATE {SCHEMA}.operations SET correlation_id = $2, awaiting = $3 WHERE operation_id = $1",
                operation.operation_id,
                operation.correlation_id,
                operation.awaiting,
            )

    async def _run(self, operation: Operation, work: Work) -> None:
        tracker = Tracker(operation, self)
        try:
            outcome = await work(tracker)
            result = outcome.model_dump(mode="json", exclude={"config"}) if isinstance(outcome, BaseModel) else outcome
            operation.result, operation.status = result, "succeeded"
        except StrataError as error:
            operation.error, operation.status = described(error), "failed"
        except Exception as error:  # a bug must end the operation visibly, not leave it running for ever
            log.exception("operation crashed", operation_id=str(operation.operation_id))
            operation.error = {"class": type(error).__name__, "code": "INTERNAL", "message": "internal error"}
            operation.status = "failed"
        finally:
            for follower in tracker.followers:  # the work's watch is closed: nothing more will be heard
                follower.cancel()
        operation.finished_at = datetime.now(UTC)
        operation.note(operation.status)
        try:
            with translated_errors():
                await self.pool.execute(
                    f"UPDATE {SCHEMA}.operations SET status = $2, result = $3::jsonb, error = $4::jsonb, "
                    f"finished_at = $5 WHERE operation_id = $1",
                    operation.operation_id,
                    operation.status,
                    json.dumps(operation.result),
                    json.dumps(operation.error),
                    operation.finished_at,
                )
        except StrataError as error:
            log.warning("operation outcome not recorded", operation_id=str(operation.operation_id), error=str(error))
        self._forget_old()

    async def _beat(self) -> None:
        """Say of every operation this process still runs that it does, until none is left."""
        while running := [op.operation_id for op in self.running.values() if op.status == "running"]:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                with translated_errors():
                    await self.pool.execute(
                        f"UPDATE {SCHEMA}.operations SET alive_at = now() "
                        f"WHERE operation_id = ANY($1::uuid[]) AND status = 'running'",
                        running,
                    )
            except StrataError as error:  # the next beat tries again; a row is abandoned only after several
                log.warning("operations heartbeat not recorded", error=str(error))

    def _forget_old(self) -> None:
        finished = [op for op in self.running.values() if op.status != "running"]
        for operation in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.running[operation.operation_id]

    async def get(self, operation_id: UUID) -> Operation:
        """The operation, from memory or its row; NotFound if there is none."""
        if operation_id in self.running:
            return self.running[operation_id]
        with translated_errors():
            row = await self.pool.fetchrow(ABANDON_AND_READ, operation_id, json.dumps(ABANDONED), ABANDONED_AFTER)
        if row is None:
            raise NotFound(f"no operation {operation_id}", field="operation_id")
        return Operation(
            operation_id=row["operation_id"],
            kind=row["kind"],
            target=row["target"],
            actor=row["actor"],
            status=row["status"],
            correlation_id=row["correlation_id"],
            result=json.loads(row["result"]) if row["result"] else None,
            error=json.loads(row["error"]) if row["error"] else None,
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )

    async def follow(self, operation_id: UUID) -> AsyncIterator[str]:
        """Server-Sent Events: each progress entry as a `progress` event, then the operation as `end`.

        An operation another process follows (or followed before a restart) is read from its row every second:
        its progress is not known here, its end is."""
        operation = await self.get(operation_id)
        local = operation_id in self.running
        sent = 0
        while True:
            changed = operation.changed
            for entry in operation.progress[sent:]:
                yield f"event: progress\ndata: {json.dumps(entry)}\n\n"
            sent = len(operation.progress)
            if operation.status != "running":
                yield f"event: end\ndata: {json.dumps(operation.public())}\n\n"
                return
            try:
                await asyncio.wait_for(changed.wait(), 15 if local else 1)
            except TimeoutError:
                if local:
                    yield ": still running\n\n"  # a comment keeps proxies from closing an idle stream
                else:
                    operation = await self.get(operation_id)

    async def stop(self) -> None:
        """Cancel what still runs (its rows stay 'running' until the consumer records their outcome, or until they
        are found abandoned)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
