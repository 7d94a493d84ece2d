"""Who is calling, and may they: every route depends on `caller(ROLE)`.

A script sends its key (`Authorization: Bearer KEY` or `X-API-Key: KEY`); the console sends its session cookie
(HttpOnly, SameSite=Strict) and, on every change, the session's CSRF token (a form's `csrf_token` field, or the
`X-CSRF-Token` header), and a request whose Origin is another site is refused. No key: 401. A role that may not:
403. Nothing about a refusal says whether a key exists.
"""

import hmac
from collections.abc import Awaitable, Callable
from typing import ClassVar
from urllib.parse import urlsplit

from fastapi import Request

from schemas import StrataError
from services.api.context import ApiContext
from services.api.keys import ApiKey, Role, Session

SESSION_COOKIE = "strata_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthenticated(StrataError):
    """No key was given, or it is unknown or revoked."""

    code: ClassVar[str] = "UNAUTHENTICATED"


class PermissionDenied(StrataError):
    """The caller's role may not do this, or a console change came without its CSRF token or from another site."""

    code: ClassVar[str] = "PERMISSION_DENIED"


def context_of(request: Request) -> ApiContext:
    """The daemon's context, set on the app when it was built."""
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context


def given_key(request: Request) -> str | None:
    """The key a script sent, if any."""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def session_of(request: Request) -> Session | None:
    """The console session of the request's cookie, if it is live."""
    token = request.cookies.get(SESSION_COOKIE)
    return await context_of(request).keys.session(token) if token else None


def same_origin(request: Request) -> bool:
    """Whether the request's Origin (or Referer) is this site; a browser sends one with every cross-site POST."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def check_csrf(request: Request, session: Session) -> None:
    """A change made with a session cookie must carry the session's token and come from this site."""
    if request.method in SAFE_METHODS:
        return
    if not same_origin(request):
        raise PermissionDenied("a change from another site is refused", field="origin")
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        token = str((await request.form()).get("csrf_token") or "")
    if not token or not hmac.compare_digest(token, session.csrf_token):
        raise PermissionDenied("the form's CSRF token is missing or wrong: reload the page", field="csrf_token")


async def identify(request: Request) -> ApiKey:
    """The caller's key: from its header, or from its console session (CSRF checked); 401 without either."""
    secret = given_key(request)
    if secret is not None:
        key = await context_of(request).keys.find(secret)
        if key is None:
            raise Unauthenticated("the API key is unknown or revoked")
        return key
    session = await session_of(request)
    if session is None:
        raise Unauthenticated("an API key is needed: `Authorization: Bearer KEY` (strata api-key create)")
    await check_csrf(request, session)
    return session.key


def caller(needed: Role) -> Callable[[Request], Awaitable[ApiKey]]:
    """A route's dependency: the caller's key if its role allows `needed`, else 401 or 403."""

    async def allowed(request: Request) -> ApiKey:
        key = await identify(request)
        if not key.role.allows(needed):
            raise PermissionDenied(f"a {key.role.value} key may not do this (it needs {needed.value})", field="role")
        return key

    return allowed
