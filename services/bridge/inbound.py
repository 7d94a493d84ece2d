"""CloudStack's messages, taken effectively once, a batch at a time.

The bridge's inbox is keyed by the operation, not by the AMQP message: a request's base key is its event type, its
entity's uuid and its targets (a migration's destination pool). A request finding an operation of that key still
open, or settled after the request was made, is a duplicate (the same message again, Scheduled then Started); only a
request newer than the last settlement opens a new operation. The operation's row, the record of the message and the
strata command (through strata's outbox) commit in one transaction, so a crash anywhere repeats nothing and loses
nothing: the messages are acked only after the commit, and a redelivery finds the row.

A batch (the messages the link has at hand) is planned first, outside any transaction: parsed, and the commands
built, asking strata's services what CloudStack's events leave out. Then every plan is applied in one transaction
(one commit for the batch, not one per message), in order, so that a Started after its Scheduled in the same batch
is a duplicate too. Reports are reconciled after the commit.

What happens to each message is recorded (`strata bridge events`): command_sent, duplicate, recorded, reconciled,
disagreed, refused (strata could not take the request: answered with an error), ignored (an unknown event type, a
category the bridge does not act on) or dead_lettered (see `link.py`).
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog
from pydantic import ValidationError

from bus.ports import UnitOfWork, UnitOfWorkFactory
from schemas import Command, Envelope, StrataError, Transient
from schemas.cloudstack import (
    SOURCE,
    ActionEvent,
    CloudStackReportDisagreed,
    MalformedEvent,
    ResourceStateEvent,
    Status,
    parse_event,
)
from services.bridge import records
from services.bridge.answering import refusal_answer
from services.bridge.builders import Defaults, Lookups, NotCarried
from services.bridge.mapping import MAPPING, STATE_REQUESTS, Row
from services.bridge.metrics import BridgeMetrics
from services.bridge.reconcile import StateProbe, reconcile
from services.bridge.records import Received

log = structlog.get_logger(__name__)
CONSUMER = "bridge.cloudstack"


class Lookup(Lookups, StateProbe, Protocol):
    """Both what the rows ask before building a command and what reconciling asks (one adapter serves both)."""


@dataclass
class Plan:
    """What one message will do in the batch's transaction; `outcome` is set once it is applied."""

    received: Received
    row: Row | None = None
    event: ActionEvent | None = None
    base_key: str = ""
    command: Command | None = None
    refusal: str | None = None
    transition: ResourceStateEvent | None = None
    outcome: str = ""
    reconcile: bool = False
    seq: int = 0
    not_carried: str | None = None

    @property
    def is_request(self) -> bool:
        """A request of a row with a command, carrying what the command needs: applied with the batch's other
        requests."""
        return (
            self.event is not None
            and self.event.requested
            and self.row is not None
            and self.row.command is not None
            and self.not_carried is None
        )


@dataclass
class Inbound:
    """Takes CloudStack's messages: plan, record and send in one transaction; `wake` wakes the answer relay."""

    units: UnitOfWorkFactory
    lookup: Lookup
    defaults: Defaults
    metrics: BridgeMetrics
    producer: str
    wake: Callable[[], None] = field(default=lambda: None)

    async def take_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[str | Exception]:
        """Handle (routing key, body) messages; return, for each, what the bridge made of it, or the error to act on:
        MalformedEvent (dead-letter it), Transient (take it again later). A database failure raises, for the batch."""
        planned: list[Plan | str | Exception] = []
        for routing_key, body in messages:
            try:
                planned.append(await self._plan(routing_key, body))
            except (MalformedEvent, Transient) as error:
                planned.append(error)
        plans = [plan for plan in planned if isinstance(plan, Plan)]
        if plans:
            async with self.units.begin(CONSUMER, None) as uow:
                assert uow is not None  # no incoming envelope: never a duplicate
                await self._apply_requests([plan for plan in plans if plan.is_request], uow)
                for plan in plans:
                    await self._apply(plan, uow)
                recorded = [plan.received for plan in plans if not plan.reconcile]
                if recorded:
                    uow.defer(records.events_insert(recorded))  # written in the commit's round trip
        if any(plan.outcome == "refused" for plan in plans):
            self.wake()
        for plan in plans:
            if plan.reconcile:  # after the commit: a failure here must not take the batch again
                try:
                    plan.outcome = await self._reconcile(plan)
                except Exception as error:  # the report stays recorded; an operator sees it in `bridge events`
                    log.error("a CloudStack report was not reconciled", error_class=type(error).__name__)
            self.metrics.count(plan.outcome)
        return [plan.outcome if isinstance(plan, Plan) else plan for plan in planned]

    async def dead_lettered(self, routing_key: str, reason: str) -> None:
        """Record a message the link dead-lettered (what `strata bridge events` lists with its reason)."""
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            await records.record(uow.connection, Received(routing_key, "dead_lettered", detail=reason))
        self.metrics.count("dead_lettered")

    async def _plan(self, routing_key: str, body: bytes) -> Plan | str:
        event = parse_event(routing_key, body)
        if isinstance(event, ResourceStateEvent):
            received = Received(
                routing_key,
                "recorded",
                category="ResourceStateEvent",
                event=event.event,
                entity=event.resource,
                entity_uuid=event.resource_id,
                occurred_at=event.occurred_at,
                detail=f"{event.old_state} -> {event.new_state}",
            )
            asked = STATE_REQUESTS.get((event.resource, event.event or ""))
            if asked is None:
                return Plan(received, transition=event)
            # A state machine's request is that action asked for: the same operation as its Scheduled and Started.
            asked_row = MAPPING[asked]
            action = ActionEvent(
                status=Status.STARTED,
                event=asked_row.event,
                entity=asked_row.entity,
                entity_uuid=event.resource_id,
                entities={asked_row.entity: event.resource_id},
                occurred_at=event.occurred_at,
            )
            return await self._row_plan(received, asked_row, action)
        if not isinstance(event, ActionEvent):
            return Plan(Received(routing_key, "ignored", category=event.category, detail="category"))
        if routing_key.partition(".")[0] == SOURCE:  # the key's first word (parse_event checked its five)
            self.metrics.count("own_answer")
            return "own_answer"  # strata's own answers come back through the same binding
        received = _received(routing_key, event, "recorded")
        row = MAPPING.get(event.event)
        if row is None:
            self.metrics.unknown_type()
            return Plan(replace(received, outcome="ignored", detail="unknown event type"))
        return await self._row_plan(received, row, event)

    async def _row_plan(self, received: Received, row: Row, event: ActionEvent) -> Plan:
        entity_uuid = event.entity_id(row.entity)
        if entity_uuid is None:
            raise MalformedEvent(f"{event.event} names no {row.entity}", field=row.entity)
        base_key = ":".join([row.event, str(entity_uuid), *(f"{t}={event.entity_id(t)}" for t in row.targets)])
        plan = Plan(received, row=row, event=event, base_key=base_key)
        if event.requested and row.command is not None:
            await self._build(plan, row, event)
        return plan

    async def _build(self, plan: Plan, row: Row, event: ActionEvent) -> None:
        assert row.command is not None
        if row.asks:  # a cheap look first, so that a duplicate asks strata's services nothing
            async with self.units.begin(CONSUMER, None) as uow:
                assert uow is not None
                latest = await records.latest_operation(uow.connection, plan.base_key)
            if records.is_duplicate(latest, event.occurred_at):
                return  # applied as a duplicate
        try:
            plan.command = await row.command(event, self.lookup, self.defaults)
        except NotCarried as missing:  # recorded: a later request of the operation may carry it
            plan.not_carried = missing.reason
        except Transient:
            raise
        except StrataError as error:
            plan.refusal = error.message
        except ValidationError as error:
            plan.refusal = f"{row.event} cannot become a strata command: {error.errors()[0]['msg']}"

    async def _apply(self, plan: Plan, uow: UnitOfWork) -> None:
        connection = uow.connection
        if plan.transition is not None:
            transition = plan.transition
            await records.lock_operation(connection, f"state:{transition.resource_id}")
            key = f"{transition.event or '*'}:{transition.old_state}->{transition.new_state}"
            if not await records.first_transition(connection, transition.resource_id, key):
                plan.received = replace(plan.received, outcome="duplicate")
        elif plan.row is not None and plan.event is not None and not plan.is_request:
            if plan.event.requested:
                why = plan.not_carried or plan.row.why_recorded or "strata does not carry it out"
                plan.received = replace(plan.received, detail=f"not sent: {why}")
            else:
                await records.lock_operation(connection, plan.base_key)
                await self._apply_report(plan, plan.event, uow)
        plan.outcome = plan.received.outcome
        if plan.reconcile:  # recorded alone: its record is updated after the comparison
            plan.seq = await records.record(connection, plan.received)

    async def _apply_requests(self, plans: list[Plan], uow: UnitOfWork) -> None:
        """Open the operations the batch asks for, or find them open, in one statement for the whole batch
        (`records.open_operations`; no lock: two transactions opening the same generation meet on its unique key,
        and the second, once the first commits, finds it taken: a duplicate)."""
        asked = []
        for order, plan in enumerate(plans):
            assert plan.event is not None
            assert plan.row is not None
            entity_uuid = plan.event.entity_id(plan.row.entity)
            assert entity_uuid is not None  # checked when planned
            command_type = plan.command.message_type if plan.command else None
            may_open = plan.command is not None or plan.refusal is not None  # else it looked a duplicate
            asked.append(
                records.Asked(order, plan.base_key, plan.event, plan.row.entity, entity_uuid, command_type, may_open)
            )
        latest, opened = await records.open_operations(uow.connection, asked)
        for order, plan in enumerate(plans):
            assert plan.event is not None
            assert plan.row is not None
            opener = opened.get(plan.base_key)
            if opener is not None and order > opener.order:  # asked again after the request that opened it
                sent = plans[opener.order].command is not None
                self._duplicate(plan, plan.event, opener.operation_key, opener.correlation_id if sent else None)
            elif opener is not None and order == opener.order:
                await self._open(plan, opener, uow)
            elif records.is_duplicate(known := latest.get(plan.base_key), plan.event.occurred_at):
                assert known is not None
                self._duplicate(plan, plan.event, known.operation_key, known.correlation_id)
            else:  # not a duplicate, yet not the opener: it looked a duplicate when planned, and no longer is
                raise Transient("the operation changed while it was planned")

    async def _open(self, plan: Plan, opener: records.Opened, uow: UnitOfWork) -> None:
        """The request that opens its operation: its command sent, or its refusal answered."""
        assert plan.event is not None
        assert plan.row is not None
        key = opener.operation_key
        if not opener.inserted:  # a concurrent batch opened it first
            self._duplicate(plan, plan.event, key, opener.correlation_id if plan.command else None)
        elif plan.command is not None:
            envelope = Envelope.wrap(plan.command, message_id=opener.correlation_id, producer=self.producer)
            uow.emit(envelope)
            plan.received = replace(
                plan.received, outcome="command_sent", operation_key=key, correlation_id=envelope.correlation_id
            )
        else:
            entity_uuid = plan.event.entity_id(plan.row.entity)
            assert entity_uuid is not None
            answer = refusal_answer(plan.event, plan.row, entity_uuid, plan.refusal or "refused")
            await records.settle_operation(uow.connection, key, succeeded=False, reason=plan.refusal, answer=answer)
            plan.received = replace(plan.received, outcome="refused", operation_key=key, detail=plan.refusal)

    def _duplicate(self, plan: Plan, event: ActionEvent, key: str, correlation_id: uuid.UUID | None) -> None:
        plan.received = replace(
            plan.received,
            outcome="duplicate",
            operation_key=key,
            correlation_id=correlation_id,
            detail=f"the operation was asked for already ({event.status.value})",
        )

    async def _apply_report(self, plan: Plan, event: ActionEvent, uow: UnitOfWork) -> None:
        connection = uow.connection
        latest = await records.latest_operation(connection, plan.base_key)
        if latest is not None and latest.command_type is not None and latest.cloudstack_failed is None:
            await records.note_cloudstack_report(connection, latest.operation_key, failed=event.failed)
            detail = "CloudStack's report of an operation strata runs"
            plan.received = replace(plan.received, operation_key=latest.operation_key, detail=detail)
        elif not await records.first_report(
            connection, f"{plan.base_key}@{event.occurred_at.isoformat()}:{event.failed}"
        ):
            plan.received = replace(plan.received, outcome="duplicate", detail="the same report again")
        else:
            plan.received = replace(plan.received, detail="an operation strata did not run")
            plan.reconcile = True

    async def _reconcile(self, plan: Plan) -> str:
        event, row = plan.event, plan.row
        assert event is not None
        assert row is not None
        entity_uuid = event.entity_id(row.entity)
        assert entity_uuid is not None
        try:
            verdict = await reconcile(event, entity_uuid, self.lookup)
        except Transient as error:  # recorded already; the comparison waits for an operator or the next report
            log.warning("could not reconcile a CloudStack report", cloudstack_event=event.event, error=error.message)
            return "recorded"
        if verdict is None:
            return "recorded"
        outcome = "reconciled" if verdict.agrees else "disagreed"
        detail = f"CloudStack: {verdict.cloudstack_says}; strata: {verdict.strata_says}"
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            await records.set_outcome(uow.connection, plan.seq, outcome, detail)
            if not verdict.agrees:
                disagreed = CloudStackReportDisagreed(
                    event=event.event,
                    entity_uuid=entity_uuid,
                    cloudstack_says=verdict.cloudstack_says,
                    strata_says=verdict.strata_says,
                )
                uow.emit(Envelope.wrap(disagreed, producer=self.producer))
        if not verdict.agrees:
            self.metrics.disagreement(event.event)
            log.warning(
                "CloudStack and strata disagree", cloudstack_event=event.event, entity=str(entity_uuid), detail=detail
            )
        return outcome


def _received(routing_key: str, event: ActionEvent, outcome: str) -> Received:
    return Received(
        routing_key,
        outcome,
        category="ActionEvent",
        event=event.event,
        status=event.status.value,
        entity=event.entity,
        entity_uuid=event.entity_uuid,
        occurred_at=event.occurred_at,
        cloudstack_failed=event.failed,
    )
