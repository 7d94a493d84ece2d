"""What to replay: a selection of the journal by operation, saga, entity, type, service, status and time.

Filters of different kinds combine (AND); repeating one kind widens it (OR): `--volume A --volume B` is every
message naming A or B. An entity filter matches every message whose payload names the id at any depth, across
operations; `whole_operations` widens each match to its whole operation (its correlation id), which is what a
timeline wants. A status (failed, dead-lettered, compensated) selects operations in which that happened, whole.

The journal is read in keyset order (occurred_at, message_id), a page at a time, never with OFFSET: the next page
starts after the last row of the previous one, so a page costs the same at the end of a large journal as at its
start. The indexes it relies on are the journal's own and those of bus migrations 0004 (producing service) and 0005
(the keyset); an entity is found by a scan of the payloads' text (see `select_sql`).
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from schemas import InvalidArgument

ENTITY_KINDS = ("volume", "pool", "snapshot", "vm", "backup", "template")
"""The entities an operator asks about; any id in a payload matches, whatever field names it."""


class Status(StrEnum):
    """What went wrong (or was undone) in an operation."""

    FAILED = "failed"
    DEAD_LETTERED = "dead-lettered"
    COMPENSATED = "compensated"


# A failure shows as a `*.failed` event (a step or an operation), an undeliverable command, or a saga that ended
# failed or stuck; a compensation as a saga that ended COMPENSATED.
_FAILED = (
    "(s.type LIKE '%.failed' OR s.type = 'bus.command.undeliverable'"
    " OR (s.type = 'saga.ended' AND s.payload->>'status' IN ('FAILED', 'STUCK')))"
)
_COMPENSATED = "(s.type = 'saga.ended' AND s.payload->>'status' = 'COMPENSATED')"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the next page starts after this (occurred_at, message_id)."""

    occurred_at: datetime
    message_id: UUID

    def __str__(self) -> str:
        return f"{self.occurred_at.isoformat()}/{self.message_id}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        """Read a cursor printed by `str(cursor)`; a malformed one is refused naming the field."""
        moment, _, message_id = text.rpartition("/")
        try:
            cursor = cls(datetime.fromisoformat(moment), UUID(message_id))
        except ValueError:
            raise InvalidArgument(f"{text!r} is not a replay cursor (TIME/MESSAGE_ID)", field="after") from None
        if cursor.occurred_at.tzinfo is None:
            raise InvalidArgument("a cursor's time must carry a time zone", field="after")
        return cursor


@dataclass(frozen=True, slots=True)
class Selection:
    """Which journal entries to read. Empty: everything (paged)."""

    correlation_ids: tuple[UUID, ...] = ()
    saga_ids: tuple[UUID, ...] = ()
    entities: tuple[tuple[str, UUID], ...] = ()
    """(kind, id) pairs; the kind is for the reader (`ENTITY_KINDS`), the id is what is matched."""
    message_ids: tuple[UUID, ...] = ()
    types: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    statuses: tuple[Status, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    whole_operations: bool = False
    dead_letter_ids: tuple[UUID, ...] = field(default=())
    """The message ids found in the dead letters (the caller reads the broker); used by `Status.DEAD_LETTERED`."""

    def __post_init__(self) -> None:
        for kind, _ in self.entities:
            if kind not in ENTITY_KINDS:
                raise InvalidArgument(f"unknown entity kind {kind!r} (one of {', '.join(ENTITY_KINDS)})", field=kind)
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidArgument(f"{name} must carry a time zone (e.g. 2026-01-01T00:00:00+00:00)", field=name)
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidArgument("since must not be after until", field="since")
        for name in ("types", "services"):
            if any(not value.strip() for value in getattr(self, name)):
                raise InvalidArgument(f"a value of {name} must not be blank", field=name)

    @property
    def empty(self) -> bool:
        """True when nothing narrows the selection."""
        return not (
            self.correlation_ids
            or self.saga_ids
            or self.entities
            or self.message_ids
            or self.types
            or self.services
            or self.statuses
            or self.since
            or self.until
        )


@dataclass
class _Sql:
    """A WHERE clause under construction, with its positional arguments."""

    arguments: list[object] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def bind(self, value: object) -> str:
        self.arguments.append(value)
        return f"${len(self.arguments)}"


def select_sql(
    selection: Selection, *, after: Cursor | None, limit: int | None, schema: str = DEFAULT_SCHEMA
) -> tuple[str, list[object]]:
    """The SELECT of `selection` after `after` (keyset), at most `limit` rows (None: all, streamed by the caller
    through a cursor), and its arguments."""
    if limit is not None and limit < 1:
        raise InvalidArgument("a limit must be at least 1", field="limit")
    schema = validate_schema(schema)
    sql = _Sql()
    for column, values, kind in (
        ("j.correlation_id", selection.correlation_ids, "uuid"),
        ("j.saga_id", selection.saga_ids, "uuid"),
        ("j.message_id", selection.message_ids, "uuid"),
        ("j.type", selection.types, "text"),
        ("split_part(j.producer, '@', 1)", selection.services, "text"),
    ):
        if values:
            sql.conditions.append(f"{column} = ANY({sql.bind(list(values))}::{kind}[])")
    # Each of these selects operations (correlation ids), the whole of which is wanted.
    operation_filters = [_status_condition(selection, sql)] if selection.statuses else []
    if selection.entities:
        # A payload names an id when its JSON text holds it (ids are written lower-case, in full): a scan of the
        # payloads' text, cheaper than any index the journal's every insert would pay for (bus migration 0006).
        patterns = sorted({f"%{entity_id}%" for _, entity_id in selection.entities})
        named = f"{{}}.payload::text LIKE ANY({sql.bind(patterns)}::text[])"
        if selection.whole_operations:
            operation_filters.append(named.format("s"))
        else:
            sql.conditions.append(named.format("j"))
    time_range: list[str] = []
    if selection.since is not None:
        time_range.append(f"{{0}}.occurred_at >= {sql.bind(selection.since)}")
    if selection.until is not None:
        time_range.append(f"{{0}}.occurred_at <= {sql.bind(selection.until)}")
    sql.conditions += [condition.format("j") for condition in time_range]
    for operations in operation_filters:
        inner = " AND ".join([operations, *(condition.format("s") for condition in time_range)])
        sql.conditions.append(f"j.correlation_id IN (SELECT s.correlation_id FROM {schema}.journal AS s WHERE {inner})")
    if after is not None:
        sql.conditions.append(
            f"(j.occurred_at, j.message_id) > ({sql.bind(after.occurred_at)}, {sql.bind(after.message_id)})"
        )
    where = f" WHERE {' AND '.join(sql.conditions)}" if sql.conditions else ""
    text = (
        "SELECT j.message_id, j.type, j.version, j.correlation_id, j.causation_id, j.saga_id, j.step, j.producer,"
        " j.fencing_token, j.occurred_at, j.recorded_at, j.headers::text AS headers, j.payload::text AS payload"
        f" FROM {schema}.journal AS j{where} ORDER BY j.occurred_at, j.message_id"
    )
    if limit is not None:
        text += f" LIMIT {sql.bind(limit)}"
    return text, sql.arguments


def _status_condition(selection: Selection, sql: _Sql) -> str:
    """Messages (alias `s`) that show one of the selection's statuses."""
    wanted: list[str] = []
    if Status.FAILED in selection.statuses:
        wanted.append(_FAILED)
    if Status.COMPENSATED in selection.statuses:
        wanted.append(_COMPENSATED)
    if Status.DEAD_LETTERED in selection.statuses:
        dead = sql.bind(list(selection.dead_letter_ids))
        wanted.append(f"(s.message_id = ANY({dead}::uuid[]) OR s.type = 'bus.command.undeliverable')")
    return "(" + " OR ".join(wanted) + ")"
