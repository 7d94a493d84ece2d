"""The web console: server-rendered pages on the API's own operations (nothing is fetched from elsewhere at run
time). Signing in with an API key opens a session: an HttpOnly, SameSite=Strict cookie, and a CSRF token that every
form carries and `auth.check_csrf` checks. Every page works with the keyboard alone and labels every control.

This module: signing in and out, the pools, volumes and operation pages. `console_storage`: adding storage.
"""

from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from schemas import StrataError
from services.api.auth import SESSION_COOKIE, PermissionDenied, check_csrf, context_of, same_origin, session_of
from services.api.errors import described, status_of, strata_error
from services.api.keys import Role, Session
from services.api.models import CreateVolumeRequest
from services.cli.talking import human_bytes

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["bytes"] = human_bytes


class SignInNeeded(StrataError):
    """A page was asked for without a live session: the answer is the sign-in page."""

    code = "UNAUTHENTICATED"


async def console_session(request: Request) -> Session:
    """The page's session (a change also checked for its CSRF token and origin); else off to sign in."""
    session = await session_of(request)
    if session is None:
        raise SignInNeeded("sign in first")
    await check_csrf(request, session)
    return session


Console = Annotated[Session, Depends(console_session)]


def may(session: Session, role: Role) -> None:
    """Refuse a change the session's role may not make."""
    if not session.key.role.allows(role):
        raise PermissionDenied(f"a {session.key.role.value} key may not do this (it needs {role.value})", field="role")


def render(request: Request, page: str, session: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
    """A page with what every page shows: who is signed in and the form token."""  # Any: template values
    context = {"session": session, "csrf": session.csrf_token if session else "", "Role": Role, **values}
    return templates.TemplateResponse(request, page, context, status_code=status)


async def refused(request: Request, error: Exception) -> Response:
    """A strata error: JSON under /api, a page elsewhere (its message names fields, never values)."""
    assert isinstance(error, StrataError)
    if request.url.path.startswith("/api/"):
        return await strata_error(request, error)
    session = await session_of(request)
    return render(request, "error.html", session, status=status_of(error), error=described(error))


async def sign_in_needed(request: Request, error: Exception) -> Response:
    """Pages without a session go to the sign-in page, and come back after."""
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "/pools") -> HTMLResponse:  # the query's name
    """The sign-in page: an API key, typed once per session."""
    return render(request, "login.html", None, next=next if next.startswith("/") else "/pools")


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form()], next: Annotated[str, Form()] = "/pools") -> Response:
    """Open a session for a valid key; the key itself is not kept in the browser."""
    context = context_of(request)
    if not same_origin(request):
        raise PermissionDenied("a sign-in from another site is refused", field="origin")
    found = await context.keys.find(key.strip())
    if found is None:
        return render(request, "login.html", None, status=401, next=next, error="That key is unknown or revoked.")
    token, _ = await context.keys.open_session(found)
    answer = RedirectResponse(next if next.startswith("/") else "/pools", status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=context.settings.secure_cookies,
        max_age=int(context.settings.session_hours * 3600),
        path="/",
    )
    return answer


@router.post("/logout")
async def logout(request: Request, session: Console) -> Response:
    """End the session."""
    await context_of(request).keys.close_session(request.cookies.get(SESSION_COOKIE, ""))
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("/")
async def home(session: Console) -> Response:
    """The pools are the console's first page."""
    return RedirectResponse("/pools", status_code=303)


@router.get("/pools")
async def pools_page(request: Request, session: Console) -> HTMLResponse:
    """Pools with their state, and capacity and allocation bars against their plugin's thresholds."""
    from services.api.routes_pools import list_pools

    context = context_of(request)
    pools = await list_pools(request, session.key, include_removed=False)
    thresholds = {}
    for pool in pools:  # the pool's own thresholds, else its plugin's defaults
        plugin = context.plugins.plugins.get(pool.plugin)
        defaults = plugin.manifest.thresholds if plugin else None
        own = pool.thresholds
        thresholds[pool.pool_id] = {
            "warn": defaults.warn_used_fraction if defaults else None,
            "capacity": own.capacity_disable_threshold
            if own
            else (defaults.stop_allocation_fraction if defaults else None),
            "allocated": own.allocated_capacity_disable_threshold
            if own
            else (defaults.stop_allocation_fraction if defaults else None),
            "overprovisioning": own.overprovisioning_factor
            if own
            else (defaults.overprovisioning_factor if defaults else 1),
        }
    return render(request, "pools.html", session, pools=pools, thresholds=thresholds)


@router.post("/pools/{pool}/{action}")
async def change_pool(request: Request, session: Console, pool: str, action: str) -> Response:
    """Enable, disable, maintain or cancel maintenance; then follow it."""
    from services.api.routes_pools import POOL_ACTIONS, start_change

    may(session, Role.OPERATOR)
    if action not in (*POOL_ACTIONS, "delete"):
        return RedirectResponse("/pools", status_code=303)
    operation = await start_change(context_of(request), session.key, pool, action)
    return RedirectResponse(f"/operations/{operation.operation_id}", status_code=303)


@router.get("/volumes")
async def volumes_page(request: Request, session: Console) -> HTMLResponse:
    """Volumes, and a form to create one on a pool."""
    return await _volumes(request, session)


async def _volumes(
    request: Request, session: Session, status: int = 200, error: dict[str, Any] | None = None, **given: str
) -> HTMLResponse:  # Any: JSON values of the error
    from services.api.routes_pools import list_pools
    from services.api.routes_volumes import list_volumes

    volumes = await list_volumes(request, session.key, pool=None, include_expunged=False)
    pools = await list_pools(request, session.key, include_removed=False)
    names = {pool.pool_id: pool.name for pool in pools}
    return render(
        request,
        "volumes.html",
        session,
        status=status,
        volumes=volumes,
        pools=pools,
        names=names,
        error=error,
        given=given,
    )


@router.post("/volumes")
async def create_volume(
    request: Request,
    session: Console,
    name: Annotated[str, Form()],
    size: Annotated[str, Form()],
    pool: Annotated[str, Form()] = "",
) -> Response:
    """Create a volume; a refusal is shown on its field."""
    from services.api.routes_volumes import start_create

    may(session, Role.OPERATOR)
    try:
        body = CreateVolumeRequest(name=name, size=size, pool=pool or None)
        operation = await start_create(context_of(request), session.key, body)
    except StrataError as error:
        return await _volumes(request, session, 422, described(error), name=name, size=size, pool=pool)
    except ValueError:
        error_body = {"field": "name", "message": "the name is 1 to 128 characters"}
        return await _volumes(request, session, 422, error_body, name=name, size=size, pool=pool)
    return RedirectResponse(f"/operations/{operation.operation_id}", status_code=303)


@router.get("/operations/{operation_id}")
async def operation_page(request: Request, session: Console, operation_id: UUID) -> HTMLResponse:
    """An operation's live progress (Server-Sent Events from the API, the page reloaded at the end)."""
    operation = await context_of(request).operations.get(operation_id)
    return render(request, "operation.html", session, operation=operation.public())
