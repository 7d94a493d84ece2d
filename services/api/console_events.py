"""The console's journal page: what `strata events history` shows (by type, correlation, saga and time, a page at a
time with the keyset cursor of GET /api/v1/events/history) and, below it, the events crossing the bus live (the
page follows GET /api/v1/events/tail as Server-Sent Events). Payloads are masked as the JSON API masks them."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from schemas import StrataError
from schemas.errors import InvalidArgument
from services.api.console import Console, render
from services.api.errors import described
from services.api.routes_events import history

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Query(max_length=100)]
FILTERS = ("type", "correlation", "saga", "since", "until")
PAGE_SIZES = ("5", "20", "50", "200")


def _uuid(text: str, field: str) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        raise InvalidArgument(f"{field}: not a UUID", field=field) from None


def _time(text: str, field: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        raise InvalidArgument(f"{field}: not an ISO 8601 time", field=field) from None


@router.get("/events")
async def events_page(  # one parameter per filter
    request: Request,
    session: Console,
    *,
    type: Text = "",  # the query's name, as the API's
    correlation: Text = "",
    saga: Text = "",
    since: Text = "",
    until: Text = "",
    after: Text = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> HTMLResponse:
    """A page of the journal, oldest first, with a link to the next; the live tail below."""
    given = {
        "type": type,
        "correlation": correlation,
        "saga": saga,
        "since": since,
        "until": until,
        "limit": str(limit),
    }
    try:
        page = await history(
            request,
            session.key,
            types=[type] if type else [],
            correlation=_uuid(correlation, "correlation"),
            saga=_uuid(saga, "saga"),
            since=_time(since, "since"),
            until=_time(until, "until"),
            limit=limit,
            after=after or None,
        )
    except StrataError as error:
        problem = described(error)
        at = f"events-{problem['field']}" if problem["field"] in FILTERS else None
        return render(request, "events.html", session, status=422, messages=[], next=None, given=given,
                      sizes=PAGE_SIZES, error=problem, error_at=at)  # fmt: skip
    following = {**{key: value for key, value in given.items() if value}, "after": page.next} if page.next else None
    return render(request, "events.html", session, messages=page.messages, next=following, given=given,
                  sizes=PAGE_SIZES, error=None, error_at=None)  # fmt: skip
