"""`SagaContext`: everything saga code may do, each operation a numbered entry of the saga's journal.

Saga code runs again from the top for every message the saga receives. Each call on the context takes the next
position (`seq`) in the journal: if the journal has that entry, its recorded outcome is returned (or raised);
if not, the entry is created and the code suspends until the outcome arrives. Time, ids and randomness come only
from the context, so the same journal always drives the code down the same path; a different operation at a
recorded position is a divergence, and the saga is parked for an operator.

Operations are created when called and resolved when awaited, so that `gather` sees all of its steps before the
code suspends and sends them together.
"""

from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from sagas.records import JsonObject, RetryPolicy, SagaInstance, StepKind, StepRecord, StepStatus, StoredMessage
from schemas import Aborted, Command, Message, MessageRegistry, uuid7
from schemas.errors import ERROR_CLASSES, StrataError

T = TypeVar("T")


class Suspend(BaseException):  # control flow, not an error
    """The code reached an operation without an outcome yet. A BaseException, so saga code cannot swallow it."""


class Divergence(BaseException):  # saga code must not catch it either
    """The code asked for something else than the journal recorded at this position."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"replay diverged at step {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class Operation(Generic[T]):
    """One journaled operation; `await` it for its outcome."""

    def __init__(self, record: StepRecord, convert: Callable[[StepRecord], T]) -> None:
        self.record = record
        self._convert = convert

    @property
    def done(self) -> bool:
        """Whether the outcome is recorded (success, failure or cancellation)."""
        return self.record.status.settled

    def outcome(self) -> T:
        """The recorded result; raises the recorded error, or `Suspend` if there is no outcome yet."""
        record = self.record
        if record.status is StepStatus.SUCCEEDED:
            return self._convert(record)
        if record.status is StepStatus.FAILED:
            assert record.error is not None
            # Raised as the participant's own class (Unimplemented, NotFound, ...), so that saga code can choose
            # a fallback with an ordinary `except`.
            what = record.command.type if record.command else record.kind.value
            error = ERROR_CLASSES.get(record.error.code, StrataError)
            raise error(f"step {record.seq} ({what}) failed: {record.error.message}", field=record.error.field)
        if record.status is StepStatus.CANCELLED:
            raise Aborted(f"step {record.seq} was cancelled")
        raise Suspend

    def __await__(self) -> Generator[Any, None, T]:
        # Never yields: an outcome is known from the journal or the code suspends. An awaitable that is not an
        # Operation would yield to the event loop, which the engine reports as non-deterministic code.
        yield from ()
        return self.outcome()


class Gathered(Generic[T]):
    """Several operations awaited together: every one is sent before the code suspends."""

    def __init__(self, operations: Sequence[Operation[T]]) -> None:
        self._operations = operations

    def __await__(self) -> Generator[Any, None, list[T]]:
        yield from ()
        failed = [op for op in self._operations if op.record.status in {StepStatus.FAILED, StepStatus.CANCELLED}]
        if failed:
            failed[0].outcome()  # raises the first failure in journal order
        if not all(op.done for op in self._operations):
            raise Suspend
        return [op.outcome() for op in self._operations]


class SagaContext:
    """The saga's window on the world. Build one per replay with the instance and its journal."""

    def __init__(
        self,
        instance: SagaInstance,
        journal: dict[int, StepRecord],
        *,
        now: datetime,
        messages: MessageRegistry,
        new_uuid: Callable[[], UUID] = uuid7,
    ) -> None:
        self.instance = instance
        self.journal = journal
        self.messages = messages
        self.created: list[StepRecord] = []
        self.reached: list[int] = []
        self._now = now
        self._new_uuid = new_uuid
        self._seq = 0

    @property
    def saga_id(self) -> UUID:
        """The saga instance's id (stable across replays)."""
        return self.instance.saga_id

    @property
    def correlation_id(self) -> UUID:
        """The user operation the saga serves: every message it sends carries it."""
        return self.instance.correlation_id

    def step(
        self,
        command: Command,
        *,
        compensate: Command | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        probe: Command | None = None,
        compensate_retry: RetryPolicy | None = None,
    ) -> Operation[Message]:
        """Send `command` to the service that owns it; the outcome is the reply event.

        Args:
            compensate: the command that undoes it, run in reverse order if the saga fails before its pivot.
            retry: attempts and back-off for retryable errors (TRANSIENT by default).
            timeout: seconds to wait for a reply to one attempt; then the probe (if any) decides, else it retries.
            probe: a query whose success means the effect happened (NOT_FOUND means it did not).
            compensate_retry: retries of the compensation (5 attempts by default).
        """
        args: JsonObject = {}
        if compensate_retry is not None:
            args["compensate_retry"] = compensate_retry.to_json()
        return self._operation(
            StepKind.STEP,
            self._reply,
            command=StoredMessage.of(command),
            compensate=StoredMessage.of(compensate) if compensate else None,
            probe=StoredMessage.of(probe) if probe else None,
            policy=retry or RetryPolicy(),
            timeout=_positive(timeout, "timeout"),
            args=args,
        )

    def query(
        self, command: Command, *, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> Operation[Message]:
        """Ask a service something; nothing to undo. The outcome is the reply event."""
        return self._operation(
            StepKind.QUERY,
            self._reply,
            command=StoredMessage.of(command),
            policy=retry or RetryPolicy(),
            timeout=_positive(timeout, "timeout"),
        )

    def lock(self, *resources: str, wait: float | None = None, lease: float = 300.0) -> Operation[int]:
        """Lock every resource at once (all or nothing), leased for `lease` s; the outcome is the fencing token.

        Args:
            wait: seconds to wait in line if another saga holds one of them; None refuses at once (Aborted).
        """
        if not resources or any(not resource for resource in resources):
            raise ValueError("lock needs at least one non-empty resource name")
        args: JsonObject = {"resources": sorted(set(resources)), "lease": _positive(lease, "lease")}
        if wait is not None:
            args["wait"] = _positive(wait, "wait")
        return self._operation(StepKind.LOCK, lambda record: int((record.value or {})["token"]), args=args)

    def pivot(self) -> Operation[None]:
        """Mark the point of no return: failures after it are retried forward instead of compensated."""
        return self._operation(StepKind.PIVOT, lambda record: None)

    def sleep(self, seconds: float) -> Operation[None]:
        """Wait durably: a timer in the store, not an in-process sleep."""
        return self._operation(StepKind.SLEEP, lambda record: None, args={"seconds": _positive(seconds, "seconds")})

    def now(self) -> Operation[datetime]:
        """The time, recorded the first time so that every replay sees the same value."""
        return self._operation(StepKind.NOW, lambda record: datetime.fromisoformat(str((record.value or {})["now"])))

    def uuid(self) -> Operation[UUID]:
        """A new id, recorded the first time so that every replay sees the same value."""
        return self._operation(StepKind.UUID, lambda record: UUID(str((record.value or {})["uuid"])))

    def gather(self, *operations: Operation[T]) -> Gathered[T]:
        """Run operations in parallel; the outcome is their outcomes in order, or the first failure."""
        return Gathered(operations)

    def _reply(self, record: StepRecord) -> Message:
        assert record.result is not None
        return record.result.decode(self.messages)

    def _operation(self, kind: StepKind, convert: Callable[[StepRecord], T], **fields: Any) -> Operation[T]:
        self._seq += 1
        seq = self._seq
        self.reached.append(seq)
        recorded = self.journal.get(seq)
        if recorded is not None:
            _check_same(recorded, kind, fields)
            return Operation(recorded, convert)
        record = StepRecord(saga_id=self.saga_id, seq=seq, kind=kind, status=StepStatus.WAITING, **fields)
        record.created_at = self._now
        if kind is StepKind.NOW:
            self._settle(record, {"now": self._now.isoformat()})
        elif kind is StepKind.UUID:
            self._settle(record, {"uuid": str(self._new_uuid())})
        elif kind is StepKind.PIVOT:
            self._settle(record, {})
        elif kind in {StepKind.STEP, StepKind.QUERY}:
            record.status = StepStatus.SENT  # the engine sends attempt 1 when the code suspends
        self.journal[seq] = record
        self.created.append(record)
        return Operation(record, convert)

    def _settle(self, record: StepRecord, value: JsonObject) -> None:
        record.status = StepStatus.SUCCEEDED
        record.value = value
        record.finished_at = self._now


def _check_same(recorded: StepRecord, kind: StepKind, fields: dict[str, Any]) -> None:
    if recorded.kind is not kind:
        raise Divergence(recorded.seq, f"the code asks for {kind.value} where the journal has {recorded.kind.value}")
    command: StoredMessage | None = fields.get("command")
    if command is not None and recorded.command is not None:
        if command.type != recorded.command.type:
            raise Divergence(
                recorded.seq, f"the code sends {command.type} where the journal has {recorded.command.type}"
            )
        if command.payload != recorded.command.payload and command.version == recorded.command.version:
            raise Divergence(recorded.seq, f"the code sends {command.type} with other arguments than recorded")
    if kind is StepKind.LOCK and fields.get("args", {}).get("resources") != recorded.args.get("resources"):
        raise Divergence(recorded.seq, "the code locks other resources than recorded")
    if kind is StepKind.SLEEP and fields.get("args", {}).get("seconds") != recorded.args.get("seconds"):
        raise Divergence(recorded.seq, "the code sleeps for another duration than recorded")


def _positive(value: float | None, name: str) -> float | None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive")
    return value
