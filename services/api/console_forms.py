"""Console forms on a volume and its backups: a volume's page (resize, snapshot policies created and deleted, a
backup taken) and a backup's restore page (to a new volume, or in place). Each form posts with the session's CSRF
token to the same route function as the JSON API, then follows the operation it started; a refusal comes back on
the page with the server's error placed on its field (`attempt`).
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from schemas import StrataError
from schemas.errors import NotFound
from services.api.console import Console, may, render, templates
from services.api.errors import described
from services.api.keys import Role, Session
from services.api.routes_actions import (
    PolicyRequest,
    ResizeRequest,
    create_policy,
    delete_policy,
    list_policies,
    resize_volume,
)
from services.api.routes_more import (
    InPlaceRequest,
    RestoreRequest,
    TakeBackupRequest,
    list_backups,
    list_repositories,
    restore_backup,
    restore_in_place,
    take_backup,
)
from services.api.routes_ops import ActRequest, cancel_operation
from services.api.routes_pools import list_pools
from services.api.routes_volumes import list_volumes, show_volume
from services.cli.talking import invalid

router = APIRouter(include_in_schema=False)
JsonObject = dict[str, Any]  # Any: JSON values


@dataclass(frozen=True)
class Shown:
    """What a form's page shows besides its data: its status, the server's error and the id of the control it is
    placed on (None: a banner), and what was typed (never a secret)."""

    status: int = 200
    error: JsonObject | None = None
    error_at: str | None = None
    given: dict[str, str] = field(default_factory=dict)

    def values(self) -> JsonObject:
        """The template's values."""
        return {"error": self.error, "error_at": self.error_at, "given": self.given}


FRESH = Shown()
Page = Callable[[Shown], Awaitable[HTMLResponse]]
INTERVALS = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY")
templates.env.filters["pairs"] = lambda values: [(str(value), str(value)) for value in values]  # a select's options


def followed(answer: JSONResponse) -> RedirectResponse:
    """To the console's page of the operation a route started."""
    return RedirectResponse(str(answer.headers["location"]).replace("/api/v1", ""), status_code=303)


def controls(form: str, fields: Iterable[str]) -> dict[str, str]:
    """Each field of a form and the id of its control (`FORM-FIELD`)."""
    return {field: f"{form}-{field}" for field in fields}


async def attempt(
    page: Page, placed: dict[str, str], given: dict[str, str], start: Callable[[], Awaitable[JSONResponse]]
) -> Response:
    """Run `start` (it builds the request and calls the route); on a refusal, the page again with the error on the
    control `placed` gives for its field, else as a banner."""
    try:
        try:
            answer = await start()
        except ValueError as error:  # pydantic's, building the request: the field at fault, never the value
            raise invalid(error) from None
    except StrataError as error:
        problem = described(error)
        field = (problem["field"] or "").removeprefix("body.")
        return await page(Shown(422, problem, placed.get(field), given))
    return followed(answer)


def number(text: str) -> int | str:
    """A form's number as an int; otherwise the text, which the model refuses naming its field."""
    return int(text) if text.strip().lstrip("-").isdigit() else text


async def _volume_page(
    request: Request,
    session: Session,
    volume: str,
    shown: Shown = FRESH,
) -> HTMLResponse:
    info = await show_volume(request, session.key, volume)
    policies = await list_policies(request, session.key, volume=str(info.volume_id))
    repositories = await list_repositories(request, session.key)
    backups = await list_backups(request, session.key, volume=str(info.volume_id))
    return render(
        request,
        "volume.html",
        session,
        status=shown.status,
        volume=info,
        policies=policies,
        repositories=repositories,
        backups=backups,
        intervals=INTERVALS,
        **shown.values(),
    )


@router.get("/volumes/{volume}")
async def volume_page(request: Request, session: Console, volume: str) -> HTMLResponse:
    """A volume: its state and size, its snapshot policies and backups, and the forms that change them."""
    return await _volume_page(request, session, volume)


@router.post("/volumes/{volume}/resize")
async def resize(
    request: Request,
    session: Console,
    volume: str,
    size: Annotated[str, Form()],
    allow_shrink: Annotated[bool, Form()] = False,
) -> Response:
    """Resize the volume, then follow it; a bad size comes back on its field."""
    may(session, Role.OPERATOR)
    given = {"size": size, "allow_shrink": "true" if allow_shrink else ""}

    async def start() -> JSONResponse:
        return await resize_volume(request, session.key, volume, ResizeRequest(size=size, allow_shrink=allow_shrink))

    return await attempt(
        partial(_volume_page, request, session, volume), controls("resize", ("size", "allow_shrink")), given, start
    )


@router.post("/volumes/{volume}/snapshot-policies")
async def add_policy(  # noqa: PLR0917  # one parameter per form field
    request: Request,
    session: Console,
    volume: str,
    interval: Annotated[str, Form()],
    schedule: Annotated[str, Form()],
    timezone: Annotated[str, Form()] = "UTC",
    max_snaps: Annotated[str, Form()] = "8",
) -> Response:
    """Create a snapshot policy on the volume; a bad schedule or time zone comes back on its field."""
    may(session, Role.OPERATOR)
    given = {"interval": interval, "schedule": schedule, "timezone": timezone, "max_snaps": max_snaps}

    async def start() -> JSONResponse:
        body = PolicyRequest.model_validate(
            {"volume": volume, **given, "max_snaps": number(max_snaps), "timezone": timezone or "UTC"}
        )
        return await create_policy(request, session.key, body)

    return await attempt(
        partial(_volume_page, request, session, volume),
        controls("policy", ("interval", "schedule", "timezone", "max_snaps")),
        given,
        start,
    )


@router.post("/snapshot-policies/{policy_id}/delete")
async def remove_policy(request: Request, session: Console, policy_id: uuid.UUID) -> Response:
    """Delete a snapshot policy (its snapshots stay), then follow it."""
    may(session, Role.OPERATOR)
    return followed(await delete_policy(request, session.key, policy_id))


@router.post("/volumes/{volume}/backups")
async def back_up(
    request: Request,
    session: Console,
    volume: str,
    repository: Annotated[str, Form()] = "",
    keep_snapshot: Annotated[bool, Form()] = False,
) -> Response:
    """Back the volume up to a repository, then follow it."""
    may(session, Role.OPERATOR)
    given = {"repository": repository, "keep_snapshot": "true" if keep_snapshot else ""}

    async def start() -> JSONResponse:
        body = TakeBackupRequest(volume=volume, repository=repository, keep_snapshot=keep_snapshot)
        return await take_backup(request, session.key, body)

    return await attempt(
        partial(_volume_page, request, session, volume),
        controls("backup", ("repository", "keep_snapshot")),
        given,
        start,
    )


async def _restore_page(
    request: Request,
    session: Session,
    backup_id: uuid.UUID,
    shown: Shown = FRESH,
) -> HTMLResponse:
    backups = [
        each for each in await list_backups(request, session.key, volume=None) if each["backup_id"] == str(backup_id)
    ]
    if not backups:
        raise NotFound(f"no backup {backup_id}", field="backup_id")
    volumes = await list_volumes(request, session.key, pool=None, include_expunged=False)
    pools = await list_pools(request, session.key, include_removed=False)
    return render(
        request,
        "restore.html",
        session,
        status=shown.status,
        backup=backups[0],
        own=next((each.name for each in volumes if str(each.volume_id) == backups[0]["volume_id"]), ""),
        volumes=volumes,
        pools=pools,
        **shown.values(),
    )


@router.get("/backups/{backup_id}/restore")
async def restore_page(request: Request, session: Console, backup_id: uuid.UUID) -> HTMLResponse:
    """A backup's restore: to a new volume, or in place over a volume whose VM is stopped."""
    return await _restore_page(request, session, backup_id)


@router.post("/backups/{backup_id}/restore")
async def restore_new(
    request: Request,
    session: Console,
    backup_id: uuid.UUID,
    name: Annotated[str, Form()] = "",
    pool: Annotated[str, Form()] = "",
) -> Response:
    """Restore to a new volume, then follow it."""
    may(session, Role.OPERATOR)
    given = {"name": name, "pool": pool}

    async def page(shown: Shown) -> HTMLResponse:
        return await _restore_page(request, session, backup_id, shown)

    async def start() -> JSONResponse:
        body = RestoreRequest(name=name, pool=pool or None)
        return await restore_backup(request, session.key, backup_id, body)

    return await attempt(page, controls("new", ("name", "pool")), given, start)


@router.post("/backups/{backup_id}/restore-in-place")
async def restore_over(  # noqa: PLR0917  # one parameter per form field
    request: Request,
    session: Console,
    backup_id: uuid.UUID,
    volume: Annotated[str, Form()] = "",
    vm: Annotated[str, Form()] = "",
    host: Annotated[str, Form()] = "",
) -> Response:
    """Restore over a volume (its VM stopped), then follow it."""
    may(session, Role.OPERATOR)
    given = {"volume": volume, "vm": vm, "host": host}

    async def page(shown: Shown) -> HTMLResponse:
        return await _restore_page(request, session, backup_id, shown)

    async def start() -> JSONResponse:
        body = InPlaceRequest(volume=volume, vm=vm or None, host=host or None)
        return await restore_in_place(request, session.key, backup_id, body)

    return await attempt(page, controls("inplace", ("volume", "vm", "host")), given, start)


@router.post("/operations/{operation_id}/cancel")
async def cancel(request: Request, session: Console, operation_id: uuid.UUID) -> Response:
    """Cancel the operation (its saga compensated), then watch it end; a refusal is the error page, saying why."""
    may(session, Role.OPERATOR)
    await cancel_operation(request, session.key, operation_id, ActRequest(reason="from the console"))
    return RedirectResponse(f"/operations/{operation_id}", status_code=303)
