"""Sandbox replay: re-run an export's sagas against the current code, and diff what they emit against the record.

The sandbox is the orchestrator's side of each operation: the saga engine and the outcome announcer, on a saga
store of its own (a fresh database); and the data plane where it can be: the agent's volume commands run by the
agent's current code on the recorded pools' plugins, each on a temporary directory (`data_plane`), their answers
compared with the recorded ones. Everything else stays outside and answers from the record: the command that
started the saga, and every reply the other participants (services, the hypervisor) sent. Nothing is published
anywhere: what the sandbox emits is collected and compared, so a replay cannot reach a live system.

The engine runs on a clock the sandbox moves: to each recorded reply's time as it is delivered, and to a timer's
due time when nothing else can happen (a retry's back-off, a timeout that fired in the recording). A timer falling
after the recording's end is not fired: the record says nothing about what came next. A command the recording does
not have (another id: another step, attempt or saga) stops the replay there, since nobody outside could answer it;
one for the sandbox's data plane is answered by it, recorded or not.
"""

import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

from bus.postgres.errors import translated_errors
from bus.postgres.pool import create_pool
from sagas.definition import SagaRegistry, saga_registry
from sagas.engine import SagaEngine
from sagas.memory_store import MemorySagaStore
from sagas.ports import SagaStore
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from sagas.records import SagaStatus, StepKind, StepRecord
from schemas import Command, Envelope, MessageRegistry, StrataError, registry
from services.embedded import embedded_postgres
from services.orchestrator.outcomes import OUTCOMES
from services.replay.data_plane import DataPlane, configures_pools, temporary_root
from services.replay.diff import Comparable, Diff, Verdict, compare, substitute
from services.replay.export_format import Export
from services.replay.reading import Recorded, masked_payload
from services.replay.saga_run import Clock, ExportIndex, SagaRun
from services.replay.timeline import SagaRecord

_MAX_EVENTS = 10_000  # replies and timers per saga: a loop in saga code ends here, reported
_LATE = timedelta(seconds=1)  # a timer due this much after the recording's last message never fired there


@dataclass
class SagaVerdict:
    """How one saga's replay compares with its recording."""

    saga_id: UUID
    name: str
    version: int
    recorded_status: str
    replayed_status: str
    diff: Diff = field(default_factory=Diff)
    reason: str = ""
    data_plane: list[str] = field(default_factory=list)
    """The data-plane commands the sandbox's agent ran on temporary directories (and why a pool stayed outside)."""

    @property
    def same(self) -> bool:
        """True when the replay emitted what was recorded and ended the same way."""
        return not self.reason and self.diff.same and self.recorded_status == self.replayed_status

    @property
    def first_divergent_step(self) -> int | None:
        """The first step at which the replay differs from the recording."""
        return self.diff.first_divergent_step

    def as_json(self) -> dict[str, Any]:  # a report: JSON values of every kind
        """JSON for a report (`strata replay sandbox --json`)."""
        return {
            "saga_id": str(self.saga_id),
            "name": self.name,
            "version": self.version,
            "same": self.same,
            "recorded_status": self.recorded_status,
            "replayed_status": self.replayed_status,
            "first_divergent_step": self.first_divergent_step,
            "reason": self.reason,
            "differences": [entry.as_json() for entry in self.diff.entries if entry.verdict.value != "matching"],
            "matching": self.diff.count(Verdict.MATCHING),
            "data_plane": self.data_plane,
        }


def combined_sagas(override: SagaRegistry | None) -> SagaRegistry:
    """The installed saga definitions, with those of `override` in place of the same (name, version)."""
    if override is None:
        return saga_registry
    combined = SagaRegistry()
    for definition in override:
        combined.register(definition)
    for definition in saga_registry:
        if combined.get(definition.name, definition.version) is None:
            combined.register(definition)
    return combined


class Sandbox:
    """Replays sagas of an export on `store` (a fresh one: the sandbox's own; None: each saga on a saga store in
    memory, the same engine without the database's round trips), one saga at a time: the store's
    timers are claimed by due time whatever their saga, so two sagas replaying on it at once would fire each
    other's. Run several Sandboxes on stores of their own (schemas) to replay in parallel."""

    def __init__(
        self,
        store: PostgresSagaStore | None = None,
        *,
        sagas: SagaRegistry = saga_registry,
        messages: MessageRegistry = registry,
    ) -> None:
        self.store = store
        self._store: SagaStore = store or MemorySagaStore()
        self.sagas = sagas
        self.messages = messages

    async def replay(self, export: Export) -> list[SagaVerdict]:
        """Replay every saga of `export`, one after another; return a verdict for each. With a database, the
        export's pools are started on temporary directories for the data plane (removed afterwards)."""
        index = ExportIndex.of(export.messages)
        if self.store is None or not configures_pools(export):
            return [await self.replay_saga(record, index) for record in export.sagas]
        plane = DataPlane.of(self.store.pool, export, temporary_root())
        try:
            return [await self.replay_saga(record, index, plane) for record in export.sagas]
        finally:
            await plane.close()

    async def replay_saga(
        self, record: SagaRecord, index: "ExportIndex", plane: DataPlane | None = None
    ) -> SagaVerdict:
        """Replay one saga against its recorded replies and compare what it emits with what it emitted then."""
        instance = record.instance
        self._store = self.store or MemorySagaStore()  # in memory: a store of its own for each saga
        verdict = SagaVerdict(instance.saga_id, instance.name, instance.version, instance.status.value, "not run")
        definition = self.sagas.get(instance.name, instance.version)
        if definition is None:
            verdict.reason = f"saga {instance.name} v{instance.version} is not registered in this code"
            return verdict
        try:
            command = instance.input.decode(self.messages)
        except StrataError as error:
            verdict.reason = f"its input no longer decodes: {error.message}"
            return verdict
        if not isinstance(command, Command):
            verdict.reason = f"its input {instance.input.type} is not a command"
            return verdict
        mine = index.by_saga.get(instance.saga_id, [])
        run = SagaRun(
            instance=instance,
            coordinator=next((m.producer for m in mine if isinstance(m.message, Command)), "orchestrator"),
            replies=index.replies,
            known=index.known,
            clock=Clock(instance.created_at or datetime.now(UTC)),
            end=max((m.occurred_at for m in mine), default=instance.created_at or datetime.now(UTC)) + _LATE,
            plane=plane,
        )
        calls_before = len(plane.calls) if plane is not None else 0
        engine = SagaEngine(
            sagas=self.sagas, messages=self.messages, producer=run.coordinator, clock=run.clock, announce_ends=True
        )
        start = index.starts.get(instance.saga_id)
        async with self._store.session() as session:
            started = await engine.start(
                session,
                run.take,
                definition,
                command,
                saga_id=instance.saga_id,
                correlation_id=instance.correlation_id,
                cause=start.envelope() if start is not None and start.message is not None else None,
            )
        verdict.replayed_status = await self._drive(engine, run) if started else "already in the sandbox"
        verdict.reason = run.stop
        ended = next((envelope for envelope in run.emitted if envelope.type == "saga.ended"), None)
        if ended is not None:
            run.emitted += await self._outcome(ended, instance.saga_id, run.coordinator)
        generated = {**run.paths, **await self._generated(instance.saga_id, record.steps)}
        await self._forget_timers(instance.saga_id)
        verdict.diff = compare(
            [_comparable(message) for message in mine if message.producer == run.coordinator]
            + [_comparable(message) for message in run.replaced],
            [_emitted_comparable(envelope, generated) for envelope in run.emitted + run.answered],
        )
        if plane is not None:
            verdict.data_plane = [str(call) for call in plane.calls[calls_before:]]
            verdict.data_plane += sorted({plan.outside for plan in plane.pools.values() if plan.outside})
        return verdict

    async def _outcome(self, ended: Envelope, saga_id: UUID, producer: str) -> list[Envelope]:
        """What the orchestrator's announcer publishes when the saga ends (`services.orchestrator.outcomes`)."""
        async with self._store.session() as session:
            instance = await session.get_instance(saga_id)
        describe = OUTCOMES.get(instance.name) if instance is not None else None
        if instance is None or describe is None:
            return []
        outcome = Envelope.wrap(
            describe(instance), cause=ended, correlation_id=instance.correlation_id, producer=producer
        )
        return [outcome.model_copy(update={"saga_id": instance.saga_id, "step": None})]

    async def _drive(self, engine: SagaEngine, run: "SagaRun") -> str:
        """Deliver recorded replies, then due timers, until the saga ends, stops, or the recording has no more."""
        saga_id = run.instance.saga_id
        for _ in range(_MAX_EVENTS):
            if run.stop:
                break
            if run.live and run.plane is not None:
                await run.run_live(run.plane)
                continue
            if run.inbox:
                _, _, reply, sent = heapq.heappop(run.inbox)
                run.clock.now = max(run.clock.now, sent)
                async with self._store.session() as session:
                    await engine.on_reply(session, run.take, reply)
                continue
            due = await self._store.next_timer_at()
            if due is None or due > run.end or await self._ended_status(saga_id):
                break
            run.clock.now = max(run.clock.now, due)
            async with self._store.session() as session:
                timer = await session.claim_due_timer(run.clock.now)
                if timer is not None:
                    await engine.on_timer(session, run.take, timer)
        return await self._ended_status(saga_id) or "RUNNING"

    async def _forget_timers(self, saga_id: UUID) -> None:
        """Drop what is left of the saga's timers (timeouts of answered steps, a retry after the recording's end),
        so that the next saga's replay on this store fires its own timers only."""
        with translated_errors():
            if isinstance(self._store, PostgresSagaStore):
                await self._store.pool.execute(f"DELETE FROM {self._store.schema}.timers WHERE saga_id = $1", saga_id)

    async def _ended_status(self, saga_id: UUID) -> str:
        async with self._store.session() as session:
            instance = await session.get_instance(saga_id)
        if instance is None or instance.status is SagaStatus.RUNNING or instance.status is SagaStatus.COMPENSATING:
            return ""
        return instance.status.value

    async def _generated(self, saga_id: UUID, recorded_steps: list[StepRecord]) -> dict[str, str]:
        """What the sandbox generated (ctx.uuid, ctx.now) mapped to what the recording generated at the same step."""
        async with self._store.session() as session:
            replayed = {step.seq: step for step in await session.load_steps(saga_id)}
        mapping: dict[str, str] = {}
        for step in recorded_steps:
            twin = replayed.get(step.seq)
            if twin is None or twin.kind is not step.kind or step.kind not in {StepKind.UUID, StepKind.NOW}:
                continue
            key = "uuid" if step.kind is StepKind.UUID else "now"
            mine, theirs = (twin.value or {}).get(key), (step.value or {}).get(key)
            if mine is not None and theirs is not None:
                mapping[str(mine)] = str(theirs)
        return mapping


def _comparable(message: Recorded) -> Comparable:
    return Comparable(message.message_id, message.type, message.step, message.payload())


def _emitted_comparable(envelope: Envelope, generated: dict[str, str]) -> Comparable:
    payload = substitute(masked_payload(envelope.payload), generated)
    return Comparable(envelope.message_id, envelope.type, envelope.step, payload)


@asynccontextmanager
async def sandbox_store(server_url: str | None = None) -> AsyncIterator[PostgresSagaStore]:
    """A saga store in a fresh database: a new database on `server_url`'s server (dropped afterwards), or, by
    default, an embedded PostgreSQL of its own (`strata demo`'s), removed afterwards."""
    if server_url is None:
        async with embedded_postgres() as url, _store_on(url) as store:
            yield store
        return
    name = f"strata_sandbox_{uuid4().hex[:12]}"
    admin = await create_pool(server_url, min_size=1, max_size=1)
    try:
        with translated_errors():
            await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            async with _store_on(urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))) as store:
                yield store
        finally:
            with translated_errors():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def _store_on(database_url: str) -> AsyncIterator[PostgresSagaStore]:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            await migrate_sagas(connection)
        yield PostgresSagaStore(pool)
    finally:
        await pool.close()
