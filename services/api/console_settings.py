"""Console forms on where data lives: a template or ISO registered from a URL, an image store added (its plugin's
config form from its JSON Schema), and a pool's settings changed (its config fields, every one empty = unchanged,
secrets as password inputs; its tags; its own capacity thresholds). Each posts to the same route function as the
JSON API and follows the operation; a refusal comes back with the server's error on its field, secrets empty."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from schemas.image import ImageFormat, ImageKind
from schemas.storage import PoolThresholds
from services.api.console import Console, may, render
from services.api.console_forms import FRESH, Shown, attempt, controls
from services.api.forms import FormField, config_form, given_values, posted_changes, posted_config, update_form
from services.api.keys import Role, Session
from services.api.routes_actions import RegisterRequest, register_image
from services.api.routes_more import list_images
from services.api.routes_pools import show_pool
from services.api.routes_stores import PoolUpdateRequest, StoreRequest, add_store, list_stores, update_pool

router = APIRouter(include_in_schema=False)
JsonObject = dict[str, Any]  # Any: JSON values
THRESHOLDS = "thresholds."
REGISTER_FIELDS = ("name", "url", "kind", "format", "checksum", "zone")


async def _templates_page(
    request: Request,
    session: Session,
    shown: Shown = FRESH,
) -> HTMLResponse:
    images = await list_images(request, session.key, kind=None, limit=500)
    stores = await list_stores(request, session.key)
    return render(
        request,
        "templates.html",
        session,
        status=shown.status,
        images=images,
        stores=stores,
        kinds=[kind.value for kind in ImageKind],
        formats=[each.value for each in ImageFormat],
        **shown.values(),
    )


@router.get("/templates")
async def templates_page(request: Request, session: Console) -> HTMLResponse:
    """Templates and ISOs with their state in each store, the image stores, and a form to register one."""
    return await _templates_page(request, session)


@router.post("/templates")
async def register(request: Request, session: Console) -> Response:
    """Register a template or ISO from a URL, then follow it; a bad URL or checksum comes back on its field."""
    may(session, Role.OPERATOR)
    form = {key: str(value) for key, value in (await request.form()).items()}
    given = {name: form.get(name, "") for name in REGISTER_FIELDS}

    async def page(shown: Shown) -> HTMLResponse:
        return await _templates_page(request, session, shown)

    async def start() -> JSONResponse:
        body = RegisterRequest.model_validate(
            {**given, "checksum": given["checksum"] or None, "zone": given["zone"] or "default"}
        )
        return await register_image(request, session.key, body)

    return await attempt(page, controls("register", REGISTER_FIELDS), given, start)


def _image_plugins(request: Request) -> list[str]:
    from services.api.auth import context_of

    return sorted(name for name, each in context_of(request).plugins.plugins.items() if "image" in each.manifest.roles)


def _schema(request: Request, plugin: str) -> JsonObject:
    from services.api.auth import context_of

    return context_of(request).plugins.get(plugin).manifest.config_model.model_json_schema()


async def _store_page(
    request: Request,
    session: Session,
    plugin: str,
    shown: Shown = FRESH,
) -> HTMLResponse:
    plugins = _image_plugins(request)
    chosen = plugin if plugin in plugins else ""
    fields = config_form(_schema(request, chosen), shown.given) if chosen else []
    return render(
        request,
        "image_store_add.html",
        session,
        status=shown.status,
        plugins=plugins,
        plugin=chosen,
        fields=fields,
        **shown.values(),
    )


@router.get("/image-stores/add")
async def store_page(
    request: Request, session: Console, plugin: Annotated[str, Query(max_length=128)] = ""
) -> HTMLResponse:
    """Add an image store: its plugin, then that plugin's config form."""
    return await _store_page(request, session, plugin)


@router.post("/image-stores/add")
async def add_image_store(request: Request, session: Console) -> Response:
    """Add the image store, then follow it; a bad config value comes back on its field (secrets empty again)."""
    may(session, Role.OPERATOR)
    form = {key: str(value) for key, value in (await request.form()).items()}
    plugin = form.get("plugin", "")
    fields = config_form(_schema(request, plugin)) if plugin in _image_plugins(request) else []
    given = {**given_values(form, fields), "name": form.get("name", ""), "zone": form.get("zone", "")}

    async def page(shown: Shown) -> HTMLResponse:
        return await _store_page(request, session, plugin, shown)

    async def start() -> JSONResponse:
        body = StoreRequest(
            name=form.get("name", ""),
            plugin=plugin,
            config=posted_config(form, fields),
            zone=form.get("zone") or "default",
        )
        return await add_store(request, session.key, body)

    placed = {**controls("store", ("name", "plugin", "zone")), **{each.name: each.input_id for each in fields}}
    return await attempt(page, placed, given, start)


def _threshold_fields(current: PoolThresholds | None, given: dict[str, str] | None = None) -> list[FormField]:
    start = (current or PoolThresholds()).model_dump()
    return config_form(PoolThresholds.model_json_schema(), given, prefix=THRESHOLDS, defaults=start)


async def _settings_page(
    request: Request,
    session: Session,
    pool: str,
    shown: Shown = FRESH,
) -> HTMLResponse:
    info = await show_pool(request, session.key, pool)
    given = shown.given
    fields = update_form(_schema(request, info.plugin))
    for each in fields:  # what was typed, after a refusal (a secret never)
        each.value = "" if each.kind == "password" else given.get(each.input_name, "")
    limits = _threshold_fields(info.thresholds, {key.removeprefix(THRESHOLDS): value for key, value in given.items()})
    return render(
        request,
        "pool_settings.html",
        session,
        status=shown.status,
        pool=info,
        fields=fields,
        limits=limits,
        tags=given.get("tags", ", ".join(sorted(info.tags))),
        error=shown.error,
        error_at=shown.error_at,
    )


@router.get("/pools/{pool}/settings")
async def settings_page(request: Request, session: Console, pool: str) -> HTMLResponse:
    """A pool's settings: config fields to change, tags, capacity thresholds."""
    return await _settings_page(request, session, pool)


@router.post("/pools/{pool}/settings")
async def change_settings(request: Request, session: Console, pool: str) -> Response:
    """Change what was filled in (an agent of the pool checks config fields), then follow it."""
    may(session, Role.OPERATOR)
    form = {key: str(value) for key, value in (await request.form()).items()}
    info = await show_pool(request, session.key, pool)
    schema = _schema(request, info.plugin)
    fields = update_form(schema)
    limits = _threshold_fields(info.thresholds)
    kept = {key: value for key, value in form.items() if key != "csrf_token" and not key.startswith("config.")}
    given = {**kept, **{each.input_name: form.get(each.input_name, "") for each in fields if each.kind != "password"}}

    async def page(shown: Shown) -> HTMLResponse:
        return await _settings_page(request, session, pool, shown)

    async def start() -> JSONResponse:
        posted = posted_config(form, limits)
        before = {each.name: each.value for each in limits}
        changed = any(str(value) != before.get(name) for name, value in posted.items())
        tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
        body = PoolUpdateRequest(
            config=posted_changes(form, fields, schema),
            tags=tags if sorted(tags) != sorted(info.tags) else None,
            thresholds=PoolThresholds(**posted) if changed else None,
            default_thresholds=form.get("default_thresholds") == "true",
        )
        return await update_pool(request, session.key, pool, body)

    placed = {
        **controls("settings", ("tags", "default_thresholds")),
        **{each.name: each.input_id for each in fields},
        **{f"thresholds.{each.name}": each.input_id for each in limits},
        **{each.name: each.input_id for each in limits if each.name not in {f.name for f in fields}},
    }
    return await attempt(page, placed, given, start)
