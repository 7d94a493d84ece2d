"""The FastAPI application: the JSON API under /api/v1 (OpenAPI 3.1 at /api/v1/openapi.json)
and the web console at /, on one context."""

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas import StrataError
from services.api import (
    console,
    console_events,
    console_forms,
    console_ops,
    console_settings,
    console_storage,
    routes_actions,
    routes_events,
    routes_images,
    routes_maintenance,
    routes_misc,
    routes_more,
    routes_ops,
    routes_plugins,
    routes_pools,
    routes_stores,
    routes_upload,
    routes_vms,
    routes_volumes,
)
from services.api.context import ApiContext
from services.api.errors import http_error, validation_error

TITLE = "strata"
DESCRIPTION = (
    "Storage orchestration over a message bus. Every change is sent as a command to the service that owns it and "
    "followed to its outcome: long ones answer 202 with an operation to poll (or follow as Server-Sent Events). "
    "Authenticate with `Authorization: Bearer KEY` (`strata api-key create --role viewer|operator|admin`)."
)


def create_app(context: ApiContext) -> FastAPI:
    """The app on `context` (the daemon's bootstrap builds it; tests may too)."""
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # FastAPI's documentation pages load their scripts from a CDN: nothing is fetched at run time
        redoc_url=None,
    )
    app.state.context = context
    app.add_exception_handler(StrataError, console.refused)
    app.add_exception_handler(console.SignInNeeded, console.sign_in_needed)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for module in (
        routes_plugins,
        routes_pools,
        routes_volumes,
        routes_misc,
        routes_more,
        routes_actions,
        routes_ops,
        routes_stores,
        routes_upload,
        routes_events,
        routes_images,
        routes_maintenance,
        routes_vms,
        console_forms,
        console_settings,
        console,
        console_events,
        console_storage,
        console_ops,
    ):
        app.include_router(module.router)
    return app
