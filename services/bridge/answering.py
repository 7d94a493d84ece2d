"""strata's answers in CloudStack's words: an operation's outcome as the Completed event CloudStack's bus would carry,
with the request's user, account and first-class entities."""

from datetime import UTC, datetime
from uuid import UUID

from schemas.cloudstack import ActionAnswer, ActionEvent, render_answer
from services.bridge.mapping import Row
from services.bridge.records import OpenOperation


def refusal_answer(event: ActionEvent, row: Row, entity_uuid: UUID, reason: str) -> tuple[str, bytes]:
    """The answer to a request strata could not take: "Error while <doing>: <reason>"."""
    answer = ActionAnswer(
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
    return render_answer(answer)


def outcome_answer(
    operation: OpenOperation, row: Row, *, succeeded: bool, reason: str | None, occurred_at: datetime
) -> tuple[str, bytes]:
    """The answer to an operation strata ran, from the request it kept."""
    request = operation.request
    answer = ActionAnswer(
        event=operation.event,
        entity=operation.entity,
        entity_uuid=operation.entity_uuid,
        entities={name: UUID(value) for name, value in request.get("entities", {}).items()},
        user=_uuid_or_none(request.get("user")),
        account=_uuid_or_none(request.get("account")),
        succeeded=succeeded,
        doing=row.doing,
        reason=reason,
        occurred_at=occurred_at,
    )
    return render_answer(answer)


def _uuid_or_none(value: object) -> UUID | None:
    return UUID(value) if isinstance(value, str) else None
