"""How a strata error becomes an HTTP answer: `{"error": {"class", "code", "message", "field"}}`, the CLI's --json
form, with the status its CSI code means. Messages name fields, never values, so no secret is echoed."""

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas import StrataError

STATUS_OF_CODE = {
    "INVALID_ARGUMENT": 422,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 507,
    "OUT_OF_RANGE": 422,
    "UNIMPLEMENTED": 501,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "TRANSIENT": 503,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class ErrorBody(BaseModel):
    """Every error answer."""

    error: dict[str, str | None]


def described(error: StrataError) -> dict[str, Any]:  # Any: JSON values
    """The error as JSON: a service's refusal under the class the service raised."""
    from services.cli.sending import CommandFailed

    kind = error.error.error_class if isinstance(error, CommandFailed) else type(error).__name__
    return {"class": kind, "code": error.code, "message": error.message, "field": error.field}


def status_of(error: StrataError) -> int:
    """The HTTP status of a strata error's code (500 for an unknown one)."""
    return STATUS_OF_CODE.get(error.code, 500)


async def strata_error(request: Request, error: Exception) -> JSONResponse:
    """A StrataError raised by a route."""
    assert isinstance(error, StrataError)
    return JSONResponse({"error": described(error)}, status_code=status_of(error))


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """A request FastAPI could not read: the first field at fault, never the value given."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    body = {"class": "InvalidArgument", "code": "INVALID_ARGUMENT", "message": f"{where}: {first['msg']}"}
    return JSONResponse({"error": {**body, "field": where or None}}, status_code=422)


CODE_OF_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "RESOURCE_EXHAUSTED"}


async def http_error(request: Request, error: Exception) -> JSONResponse:
    """An HTTP error of the framework's own (a body that is not JSON: 400), in the same form as every other."""
    assert isinstance(error, StarletteHTTPException)
    body = {
        "class": "HTTPException",
        "code": CODE_OF_STATUS.get(error.status_code, "INVALID_ARGUMENT"),
        "message": str(error.detail),
        "field": None,
    }
    return JSONResponse({"error": body}, status_code=error.status_code, headers=error.headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {  # Any: OpenAPI response objects
    status: {"model": ErrorBody, "description": why}
    for status, why in (
        (400, "the body is not JSON"),
        (401, "no key, or an unknown or revoked one"),
        (403, "the key's role may not do this, or a form's CSRF token is wrong"),
        (404, "no such object"),
        (409, "refused in the object's present state"),
        (422, "a field is invalid (named in `error.field`)"),
        (503, "the service that answers is not running or did not answer in time"),
    )
}
