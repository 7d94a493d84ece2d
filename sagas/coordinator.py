"""`Coordinator`: the saga engine on the bus. Run as many replicas as you like; they share the work.

It consumes, on its own queue, the commands that start sagas (each saga's input type, and `saga.start`) and the
step replies (`saga.step.succeeded`, `saga.step.failed`, and any reply types a deployment adds). Each message is
one unit of work: inbox row, saga row locked, journal updated, next commands to the outbox, commit. A timer loop
claims due timers with SKIP LOCKED, each in a unit of work of its own. Nothing waits in memory: back-off,
timeouts and sleeps are timers in the store.

On PostgreSQL (the bus's units of work and the saga store on one pool) a message usually costs one or two round
trips: the unit begins lazily (`sagas.postgres_units`), the saga is read without a lock (or taken from what this
replica wrote last, for a reply to a command it sent), and the commit locks the row and checks the saga's revision
in the same round trip as the writes. A saga changed meanwhile, or a message that needs locks or timers read, is
handled again the classic way above.
"""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeGuard
from uuid import UUID

import structlog

from bus.ports import Handler, Transport, UnitOfWork, UnitOfWorkFactory
from bus.postgres import PostgresUnitOfWorkFactory
from bus.runtime import Consumer
from sagas.definition import SagaDefinition, SagaRegistry, saga_registry
from sagas.engine import SagaEngine
from sagas.locks import HELD_UNTIL_AN_OPERATOR_ACTS
from sagas.ports import SagaSession, SagaStore
from sagas.postgres_optimistic import NeedsTransaction, SagaCache
from sagas.postgres_store import PostgresSagaStore
from sagas.postgres_units import SagaUnitOfWork, SagaUnitOfWorkFactory
from sagas.records import SagaEvent, SagaStatus
from sagas.settings import SagaSettings
from sagas.work import saga_id_for
from schemas import Command, Envelope, Event, InvalidArgument, Message, MessageRegistry, Transient, registry
from schemas.sagas import StartSaga, StepFailed, StepSucceeded

log = structlog.get_logger(__name__)


class Coordinator:
    """Starts sagas from commands, feeds them replies and timers.

    Args:
        transport: the bus transport (for the consumer).
        units: units of work (outbox, inbox) on the database the store lives in.
        store: the saga store; its sessions run inside the units of work.
        name: the consumer name (queue `<ns>.<name>`, inbox key).
        reply_types: domain events participants send as step replies, besides the generic ones.
        timer_poll: seconds between looks at the timers table when none was due.
        settings: the engine's waits (`STRATA_SAGA_*` from the environment when not given).
        clock: the time the engine and the timer loop go by (tests move it on instead of sleeping).
    """

    def __init__(
        self,
        transport: Transport,
        units: UnitOfWorkFactory,
        store: SagaStore,
        *,
        sagas: SagaRegistry = saga_registry,
        messages: MessageRegistry = registry,
        name: str = "saga-coordinator",
        reply_types: Sequence[type[Event]] = (),
        prefetch: int = 64,
        timer_poll: float = 0.1,
        announce_ends: bool = False,
        settings: SagaSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        settings = settings or SagaSettings()
        if _plain_postgres(units, store):
            units = SagaUnitOfWorkFactory.like(units)  # see sagas.postgres_units: one or two round trips fewer
        self.units = units
        self.store = store
        self._known = SagaCache()  # the sagas this replica wrote last (used by its lazily begun units only)
        self.sagas = sagas
        self.messages = messages
        self.name = name
        self.timer_poll = timer_poll
        self.engine = SagaEngine(
            sagas=sagas,
            messages=messages,
            producer=name,
            announce_ends=announce_ends,
            clock=clock,
            step_timeout=settings.step_timeout,
        )
        handlers: dict[type[Message], Handler] = {StartSaga: self.start_by_name}
        handlers.update(dict.fromkeys(sagas.input_types(), self.start_saga))
        handlers.update(dict.fromkeys((StepSucceeded, StepFailed, *reply_types), self.take_reply))
        self.consumer = Consumer(transport, units, name=name, handlers=handlers, prefetch=prefetch, messages=messages)
        self._timers: asyncio.Task[None] | None = None
        self._parking: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start consuming and polling timers."""
        await self.consumer.start()
        self._timers = asyncio.create_task(self.run_timers(), name=f"{self.name}-timers")

    async def stop(self) -> None:
        """Stop the timer loop and the consumer (messages in flight finish first)."""
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
            self._timers = None
        await self.consumer.stop()
        await asyncio.gather(*self._parking, return_exceptions=True)

    async def start_saga(self, command: Command, envelope: Envelope, uow: UnitOfWork) -> None:
        """A saga's input command arrived: start the newest version of the saga it starts."""
        definition = self.sagas.for_input(type(command))
        if definition is None:
            raise InvalidArgument(f"no saga starts with {envelope.type}", field="type")
        await self._start(definition, command, envelope, uow)

    async def start_by_name(self, command: StartSaga, envelope: Envelope, uow: UnitOfWork) -> None:
        """`saga.start`: start a saga by name (and version) with an input given as JSON."""
        definition = self.sagas.get(command.name, command.version)
        if definition is None:
            version = f" v{command.version}" if command.version else ""
            raise InvalidArgument(f"no saga {command.name}{version} is registered", field="name")
        payload = self.messages.decode(command.input_type, command.input_version, json.dumps(command.input))
        if not isinstance(payload, definition.input_type):
            raise InvalidArgument(
                f"saga {definition.name} takes {definition.input_type.message_type}, not {command.input_type}",
                field="input_type",
            )
        await self._start(definition, payload, envelope, uow)

    async def _start(self, definition: SagaDefinition, command: Command, envelope: Envelope, uow: UnitOfWork) -> None:
        async def start(session: SagaSession) -> None:
            await self.engine.start(
                session,
                uow.emit,
                definition,
                command,
                saga_id=saga_id_for(envelope.message_id),
                correlation_id=envelope.correlation_id,
                cause=envelope,
            )

        await self._handle(uow, start, None, None)

    async def take_reply(self, event: Event, envelope: Envelope, uow: UnitOfWork) -> None:
        """A participant answered a step."""

        async def reply(session: SagaSession) -> None:
            await self.engine.on_reply(session, uow.emit, envelope)

        await self._handle(uow, reply, envelope.saga_id, envelope.causation_id)

    async def _handle(
        self,
        uow: UnitOfWork,
        work: Callable[[SagaSession], Awaitable[None]],
        saga_id: UUID | None,
        cause: UUID | None,
    ) -> None:
        """Run `work` in `uow`: optimistically in a unit not begun yet (see `sagas.postgres_units`), else locking."""
        try:
            if isinstance(uow, SagaUnitOfWork) and not uow.begun and isinstance(self.store, PostgresSagaStore):
                try:
                    async with self.store.optimistic_session(uow, self._known, cause) as optimistic:
                        await work(optimistic)
                except NeedsTransaction:
                    if not await uow.begin():
                        return  # a duplicate
                else:

                    async def redo(again: UnitOfWork) -> None:
                        await self._handle(again, work, saga_id, cause)

                    uow.redo = redo
                    return
            async with self.store.session(uow) as session:
                await work(session)
        except Exception as error:
            self._park_later(saga_id, error)
            raise

    async def run_timers(self) -> None:
        """Fire due timers until cancelled; a failing timer is logged and tried again on the next pass.

        While none is due it only reads when the next one is (one statement), and sleeps until then or for
        `timer_poll`, whichever is sooner: another replica may add an earlier timer meanwhile.
        """
        while True:
            wait = self.timer_poll
            try:
                due = await self.store.next_timer_at()
                now = self.engine.clock()
                if due is not None and due <= now and await self.fire_due_timer():
                    continue
                if due is not None and due > now:
                    wait = min(wait, (due - now).total_seconds())
            except Exception as error:  # a timer loop must outlive any one failure (the database restarting)
                log.warning("timer pass failed; retrying", error=str(error), error_class=type(error).__name__)
            await asyncio.sleep(wait)

    async def fire_due_timer(self) -> bool:
        """Claim one due timer and handle it in one transaction; False if none was due."""
        fired = False
        async with self.units.begin(f"{self.name}.timers", None) as uow:
            assert uow is not None  # no incoming message, so never a duplicate
            async with self.store.session(uow) as session:
                timer = await session.claim_due_timer(self.engine.clock())
                if timer is not None:
                    fired = True
                    try:
                        await self.engine.on_timer(session, uow.emit, timer)
                    except Exception as error:
                        self._park_later(timer.saga_id, error)
                        raise
        return fired

    def _park_later(self, saga_id: UUID | None, error: Exception) -> None:
        """After a failure that retrying will not cure, mark the saga STUCK (once its row is free again).

        The failed transaction still holds the saga's row until the runtime rolls it back, so this runs in a task
        of its own; without it the message would be dead-lettered and the saga would wait for ever, unseen.
        """
        if saga_id is None or isinstance(error, Transient):
            return
        task = asyncio.create_task(self._park(saga_id, error))
        self._parking.add(task)
        task.add_done_callback(self._parking.discard)

    async def _park(self, saga_id: UUID, error: Exception) -> None:
        reason = f"the coordinator failed on it: {type(error).__name__}: {error}"[:500]
        try:
            async with self.store.session() as session:
                instance = await session.lock_instance(saga_id)
                if instance is None or instance.status.ended or instance.status is SagaStatus.STUCK:
                    return
                instance.status, instance.error = SagaStatus.STUCK, reason
                instance.updated_at = self.engine.clock()
                await session.save_instance(instance)
                await session.renew_locks(saga_id, HELD_UNTIL_AN_OPERATOR_ACTS)  # until an operator acts
                await session.record_event(SagaEvent(saga_id, instance.updated_at, "stuck", {"reason": reason}))
        except Exception as park_error:  # the store itself is failing: the log is all that is left
            log.error("could not park a failing saga", saga_id=str(saga_id), error=str(park_error), reason=reason)


def _plain_postgres(units: UnitOfWorkFactory, store: SagaStore) -> TypeGuard[PostgresUnitOfWorkFactory]:
    """The bus's own units of work on the store's pool: the coordinator may begin them lazily."""
    return (
        isinstance(units, PostgresUnitOfWorkFactory)
        and not isinstance(units, SagaUnitOfWorkFactory)
        and isinstance(store, PostgresSagaStore)
        and store.pool is units.pool
    )
