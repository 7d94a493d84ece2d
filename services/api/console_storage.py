"""The console's "add primary storage", the seed's flow: zone → scope → cluster or host → hypervisor → the plugins
that fit (the others greyed, with the reason) → the chosen plugin's form from its config JSON Schema → submit →
the operation's live progress → the pool Up with its capacity.

Each step is a plain form (GET while choosing, POST with the CSRF token to add), so it works without JavaScript
and with the keyboard. The POST goes through the same checks and command as POST /api/v1/pools.
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from schemas import StrataError
from schemas.errors import InvalidArgument
from schemas.hosts import HostInfo
from schemas.storage import PoolScope, PoolThresholds
from services.api.auth import context_of
from services.api.console import Console, may, render
from services.api.errors import described
from services.api.forms import FormField, config_form, given_values, posted_config
from services.api.keys import Role, Session
from services.api.models import AddPoolRequest
from services.api.routes_plugins import misfit
from services.api.routes_pools import checked_add, start_add
from services.cli.host import known_hosts
from services.cli.talking import invalid

router = APIRouter(include_in_schema=False)
Choice = Annotated[str, Query(max_length=128)]
THRESHOLDS = "thresholds."
PLACEMENT_FIELDS = {"scope": "scope", "host": "target", "cluster": "target", "hypervisor": "hypervisor"}


@dataclass
class Flow:
    """What was chosen so far, and what each next step offers."""

    zone: str
    scope: str
    target: str
    hypervisor: str
    plugin: str
    zones: list[str]
    targets: list[tuple[str, str]]  # (value, label)
    hypervisors: list[str]
    plugins: list[dict[str, Any]]  # Any: a plugin's summary with fits and reason
    fields: list[FormField]
    threshold_fields: list[FormField]

    def placement(self, hosts: tuple[HostInfo, ...]) -> tuple[str | None, str | None]:
        """The (host, cluster) the chosen target means."""
        if self.scope == PoolScope.HOST.value:
            cluster = next((h.identity.cluster_id for h in hosts if h.identity.host == self.target), None)
            return self.target or None, cluster
        if self.scope == PoolScope.CLUSTER.value:
            return None, self.target or None
        return None, None


def _flow(request: Request, hosts: tuple[HostInfo, ...], chosen: dict[str, str]) -> Flow:
    zones = sorted({info.identity.zone for info in hosts}) or ["default"]
    zone = chosen.get("zone") or zones[0]
    here = [info for info in hosts if info.identity.zone == zone]
    scope = chosen.get("scope", "")
    targets: list[tuple[str, str]] = []
    if scope == PoolScope.HOST.value:
        targets = [(h.identity.host, f"{h.identity.host} (cluster {h.identity.cluster_id})") for h in here]
    elif scope == PoolScope.CLUSTER.value:
        targets = [(cluster, cluster) for cluster in sorted({h.identity.cluster_id for h in here})]
    target = chosen.get("target", "")
    reach = [h for h in here if scope == "zone" or target in (h.identity.host, h.identity.cluster_id)]
    hypervisors = sorted({h.identity.hypervisor for h in reach})
    hypervisor = chosen.get("hypervisor", "")
    plugins: list[dict[str, Any]] = []  # Any: JSON values
    ready = scope and hypervisor and (target or scope == "zone")
    if ready:
        for name, plugin in sorted(context_of(request).plugins.plugins.items()):
            reason = misfit(plugin, "primary", scope, hypervisor)
            plugins.append({**plugin.manifest.summary(), "fits": reason is None, "reason": reason, "name": name})
        plugins.sort(key=lambda plugin: not plugin["fits"])
    plugin_name = chosen.get("plugin", "")
    fitting = {plugin["name"]: plugin for plugin in plugins if plugin["fits"]}
    fields: list[FormField] = []
    limits: list[FormField] = []
    if plugin_name in fitting:
        fields = config_form(fitting[plugin_name]["config_schema"])
        limits = threshold_form(request, plugin_name)
    else:
        plugin_name = ""
    return Flow(zone, scope, target, hypervisor, plugin_name, zones, targets, hypervisors, plugins, fields, limits)


def threshold_form(request: Request, plugin: str, given: dict[str, str] | None = None) -> list[FormField]:
    """The pool's own capacity thresholds, editable, filled with the plugin's defaults."""
    defaults = context_of(request).plugins.get(plugin).manifest.thresholds
    start = {
        "capacity_disable_threshold": defaults.stop_allocation_fraction,
        "allocated_capacity_disable_threshold": defaults.stop_allocation_fraction,
        "overprovisioning_factor": defaults.overprovisioning_factor,
    }
    return config_form(PoolThresholds.model_json_schema(), given, prefix=THRESHOLDS, defaults=start)


async def _page(
    request: Request, session: Session, chosen: dict[str, str], status: int = 200, **extra: Any
) -> HTMLResponse:  # Any: template values
    context = context_of(request)
    hosts = await known_hosts(context.asking(session.key), timeout=context.settings.query_timeout_seconds)
    flow = _flow(request, hosts, chosen)
    if "given" in extra and flow.plugin:
        flow.fields = config_form(_schema_of(request, flow.plugin), extra["given"])
        flow.threshold_fields = threshold_form(request, flow.plugin, extra["given_limits"])
    return render(request, "add_storage.html", session, status=status, flow=flow, scopes=list(PoolScope), **extra)


def _schema_of(request: Request, plugin: str) -> dict[str, Any]:  # Any: JSON Schema
    return context_of(request).plugins.get(plugin).manifest.config_model.model_json_schema()


@router.get("/storage/add")
async def add_storage_page(
    request: Request,
    session: Console,
    *,
    zone: Choice = "",
    scope: Choice = "",
    target: Choice = "",
    hypervisor: Choice = "",
    plugin: Choice = "",
) -> HTMLResponse:
    """The flow, at whatever step its choices reached."""
    chosen = {"zone": zone, "scope": scope, "target": target, "hypervisor": hypervisor, "plugin": plugin}
    return await _page(request, session, chosen)


@router.post("/storage/add")
async def add_storage(request: Request, session: Console) -> Response:
    """Add the pool; a refusal comes back on its field (the secret inputs empty again)."""
    may(session, Role.OPERATOR)
    form = {key: str(value) for key, value in (await request.form()).items()}
    chosen = {key: form.get(key, "") for key in ("zone", "scope", "target", "hypervisor", "plugin")}
    context = context_of(request)
    fields: list[FormField] = []
    limits: list[FormField] = []
    try:
        fields = config_form(_schema_of(request, chosen["plugin"]))
        limits = threshold_form(request, chosen["plugin"])
        hosts = await known_hosts(context.asking(session.key), timeout=context.settings.query_timeout_seconds)
        host, cluster = _flow(request, hosts, chosen).placement(hosts)
        body = AddPoolRequest(
            name=form.get("name", "").strip() or "-",
            plugin=chosen["plugin"],
            config=posted_config(form, fields),
            scope=PoolScope(chosen["scope"]),
            zone=chosen["zone"] or "default",
            cluster=cluster,
            host=host,
            hypervisors=[chosen["hypervisor"]],
            tags=[tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()],
            thresholds=_thresholds(posted_config(form, limits)),
        )
        operation = await start_add(context, session.key, await checked_add(context, session.key, body))
    except StrataError as error:
        problem = described(error)
        config_names = {each.name for each in fields}
        field_at = problem["field"] or ""
        if field_at in config_names:  # the id of the control the error is placed on
            where = f"config-{field_at}"
        elif field_at.startswith(THRESHOLDS):
            where = field_at.replace(".", "-", 1)
        else:
            where = PLACEMENT_FIELDS.get(field_at, "name")
        return await _page(
            request,
            session,
            chosen,
            status=422,
            error=problem,
            error_at=where,
            given=given_values(form, fields),
            given_limits=given_values(form, limits),
            name=form.get("name", ""),
            tags=form.get("tags", ""),
        )
    return RedirectResponse(f"/operations/{operation.operation_id}", status_code=303)


def _thresholds(values: dict[str, Any]) -> PoolThresholds | None:  # Any: JSON values of the form
    """The pool's own thresholds as typed; InvalidArgument names the one at fault (as `thresholds.NAME`)."""
    if not values:
        return None
    try:
        return PoolThresholds(**values)
    except ValueError as error:
        refusal = invalid(error)
        raise InvalidArgument(refusal.message, field=THRESHOLDS + (refusal.field or "")) from None
