"""One message from CloudStack's exchange, taken effectively once.

The bridge's inbox is keyed by the operation, not by the AMQP message: a request's base key is its event type, its
entity's uuid and its targets (a migration's destination pool). A request finding an operation of that key still
open, or settled after the request was made, is a duplicate (the same message again, Scheduled then Started); only a
request newer than the last settlement opens a new operation. The operation's row, the record of the message and the
strata command (through strata's outbox) commit in one transaction, so a crash anywhere repeats nothing and loses
nothing: the message is acked only after the commit, and a redelivery finds the row.

What happens to each message is recorded (`strata bridge events`): command_sent, duplicate, recorded, reconciled,
disagreed, refused (strata could not take the request: answered with an error), ignored (an unknown event type, a
category the bridge does not act on) or dead_lettered (see `link.py`).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog
from pydantic import ValidationError

from bus.ports import UnitOfWorkFactory
from schemas import Command, Envelope, StrataError, Transient
from schemas.cloudstack import (
    SOURCE,
    ActionAnswer,
    ActionEvent,
    CloudStackReportDisagreed,
    MalformedEvent,
    ResourceStateEvent,
    parse_event,
    parse_routing_key,
    render_answer,
)
from services.bridge import records
from services.bridge.mapping import MAPPING, Defaults, Lookups, Row
from services.bridge.metrics import BridgeMetrics
from services.bridge.reconcile import StateProbe, reconcile
from services.bridge.records import Received

log = structlog.get_logger(__name__)
CONSUMER = "bridge.cloudstack"
_OPERATION_IDS = uuid.UUID("6f1d3c52-93a5-4c1e-9d0e-2b6a1c7f4e10")  # uuid5 namespace of the commands' message ids


class Lookup(Lookups, StateProbe, Protocol):
    """Both what the rows ask before building a command and what reconciling asks (one adapter serves both)."""


@dataclass
class Inbound:
    """Takes CloudStack's messages: parse, decide, record, send; `wake` wakes the answer relay."""

    units: UnitOfWorkFactory
    lookup: Lookup
    defaults: Defaults
    metrics: BridgeMetrics
    producer: str
    wake: Callable[[], None] = field(default=lambda: None)

    async def take(self, routing_key: str, body: bytes) -> str:
        """Handle one message; return what the bridge made of it. Raise MalformedEvent for a message to
        dead-letter and Transient when strata cannot take it now (taken again later)."""
        event = parse_event(routing_key, body)
        if isinstance(event, ResourceStateEvent):
            return await self._transition(routing_key, event)
        if not isinstance(event, ActionEvent):
            return await self._note(Received(routing_key, "ignored", category=event.category, detail="category"))
        if parse_routing_key(routing_key).source == SOURCE:
            self.metrics.count("own_answer")
            return "own_answer"  # strata's own answers come back through the same binding
        row = MAPPING.get(event.event)
        if row is None:
            self.metrics.unknown_type()
            return await self._note(self._received(routing_key, event, "ignored", detail="unknown event type"))
        entity_uuid = event.entity_id(row.entity)
        if entity_uuid is None:
            raise MalformedEvent(f"{event.event} names no {row.entity}", field=row.entity)
        base_key = ":".join([row.event, str(entity_uuid), *(f"{t}={event.entity_id(t)}" for t in row.targets)])
        if event.requested:
            return await self._request(routing_key, event, row, entity_uuid, base_key)
        return await self._report(routing_key, event, row, entity_uuid, base_key)

    async def dead_lettered(self, routing_key: str, reason: str) -> None:
        """Record a message the link dead-lettered (what `strata bridge events` lists with its reason)."""
        await self._note(Received(routing_key, "dead_lettered", detail=reason))

    def _received(  # the fields of a record that vary
        self,
        routing_key: str,
        event: ActionEvent,
        outcome: str,
        *,
        operation_key: str | None = None,
        correlation_id: uuid.UUID | None = None,
        detail: str | None = None,
    ) -> Received:
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
            operation_key=operation_key,
            correlation_id=correlation_id,
            detail=detail,
        )

    async def _note(self, received: Received) -> str:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming envelope: never a duplicate
            await records.record(uow.connection, received)
        self.metrics.count(received.outcome)
        return received.outcome

    async def _request(
        self, routing_key: str, event: ActionEvent, row: Row, entity_uuid: uuid.UUID, base_key: str
    ) -> str:
        if row.command is None:
            detail = f"strata does not carry out {row.event} from CloudStack's events"
            return await self._note(self._received(routing_key, event, "recorded", detail=detail))
        async with self.units.begin(CONSUMER, None) as uow:  # a cheap look first: a duplicate asks nothing
            assert uow is not None
            latest = await records.latest_operation(uow.connection, base_key)
        if records.is_duplicate(latest, event.occurred_at):
            return await self._note(self._duplicate(routing_key, event, latest))
        command: Command | None = None
        refusal: str | None = None
        try:
            command = await row.command(event, self.lookup, self.defaults)
        except Transient:
            raise
        except StrataError as error:
            refusal = error.message
        except ValidationError as error:
            refusal = f"{row.event} cannot become a strata command: {error.errors()[0]['msg']}"
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            connection = uow.connection
            await records.lock_operation(connection, base_key)
            latest = await records.latest_operation(connection, base_key)
            if records.is_duplicate(latest, event.occurred_at):
                received = self._duplicate(routing_key, event, latest)
                await records.record(connection, received)
            else:
                generation = latest.generation + 1 if latest else 1
                envelope = None
                if command is not None:
                    message_id = uuid.uuid5(_OPERATION_IDS, f"{base_key}#{generation}")
                    envelope = Envelope.wrap(command, message_id=message_id, producer=self.producer)
                key = await records.open_operation(
                    connection,
                    base_key=base_key,
                    generation=generation,
                    request=event,
                    entity=row.entity,
                    entity_uuid=entity_uuid,
                    command_type=command.message_type if command else None,
                    correlation_id=envelope.correlation_id if envelope else None,
                )
                if envelope is not None:
                    uow.emit(envelope)
                    received = self._received(
                        routing_key, event, "command_sent", operation_key=key, correlation_id=envelope.correlation_id
                    )
                else:
                    answer = self._refusal(event, row, entity_uuid, refusal or "refused")
                    await records.settle_operation(connection, key, succeeded=False, reason=refusal, answer=answer)
                    received = self._received(routing_key, event, "refused", operation_key=key, detail=refusal)
                await records.record(connection, received)
        if received.outcome == "refused":
            self.wake()
        self.metrics.count(received.outcome)
        return received.outcome

    def _duplicate(self, routing_key: str, event: ActionEvent, latest: records.Operation | None) -> Received:
        assert latest is not None
        return self._received(
            routing_key,
            event,
            "duplicate",
            operation_key=latest.operation_key,
            correlation_id=latest.correlation_id,
            detail=f"the operation was asked for already ({event.status.value})",
        )

    def _refusal(self, event: ActionEvent, row: Row, entity_uuid: uuid.UUID, reason: str) -> tuple[str, bytes]:
        return render_answer(
            ActionAnswer(
                event=row.event,
                entity=row.entity,
                entity_uuid=entity_uuid,
                entities=event.entities,
                user=event.user,
                account=event.account,
                succeeded=False,
                doing=row.doing,
                reason=reason,
                occurred_at=datetime.now(UTC),
            )
        )

    async def _report(
        self, routing_key: str, event: ActionEvent, row: Row, entity_uuid: uuid.UUID, base_key: str
    ) -> str:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            connection = uow.connection
            await records.lock_operation(connection, base_key)
            latest = await records.latest_operation(connection, base_key)
            ran = latest is not None and latest.command_type is not None and latest.cloudstack_failed is None
            report_key = f"{base_key}@{event.occurred_at.isoformat()}:{event.failed}"
            if ran and latest is not None:
                await records.note_cloudstack_report(connection, latest.operation_key, failed=event.failed)
                detail = "CloudStack's report of an operation strata runs"
                received = self._received(
                    routing_key, event, "recorded", operation_key=latest.operation_key, detail=detail
                )
            elif not await records.first_report(connection, report_key):
                received = self._received(routing_key, event, "duplicate", detail="the same report again")
            else:
                received = self._received(routing_key, event, "recorded", detail="an operation strata did not run")
            seq = await records.record(connection, received)
        if received.outcome != "recorded" or ran:
            self.metrics.count(received.outcome)
            return received.outcome
        return await self._reconcile(seq, event, entity_uuid)

    async def _reconcile(self, seq: int, event: ActionEvent, entity_uuid: uuid.UUID) -> str:
        try:
            verdict = await reconcile(event, entity_uuid, self.lookup)
        except Transient as error:  # recorded already; the comparison waits for an operator or the next report
            log.warning("could not reconcile a CloudStack report", event=event.event, error=error.message)
            verdict = None
        if verdict is None:
            self.metrics.count("recorded")
            return "recorded"
        outcome = "reconciled" if verdict.agrees else "disagreed"
        detail = f"CloudStack: {verdict.cloudstack_says}; strata: {verdict.strata_says}"
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            await records.set_outcome(uow.connection, seq, outcome, detail)
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
            log.warning("CloudStack and strata disagree", event=event.event, entity=str(entity_uuid), detail=detail)
        self.metrics.count(outcome)
        return outcome

    async def _transition(self, routing_key: str, event: ResourceStateEvent) -> str:
        transition = f"{event.event or '*'}:{event.old_state}->{event.new_state}"
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
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            await records.lock_operation(uow.connection, f"state:{event.resource_id}")
            if not await records.first_transition(uow.connection, event.resource_id, transition):
                received = replace(received, outcome="duplicate")
            await records.record(uow.connection, received)
        self.metrics.count(received.outcome)
        return received.outcome
