"""GET /plugins: the installed storage plugins, with whether each fits a role, scope and hypervisor (and why
not), and each one's config JSON Schema: what the console's add-storage flow renders its form from."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from plugins.sdk import LoadedPlugin
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import PluginOut
from services.cli.plugins import config_fields

router = APIRouter(prefix="/api/v1", tags=["plugins"], responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]


def misfit(plugin: LoadedPlugin, role: str | None, scope: str | None, hypervisor: str | None) -> str | None:
    """Why `plugin` does not fit (None if it does), in words an operator reads in a greyed list."""
    manifest = plugin.manifest
    if role and role not in manifest.roles:
        return f"not {role} storage (it is {', '.join(sorted(manifest.roles))})"
    if scope and scope not in manifest.scopes:
        return f"no {scope} scope (it serves {', '.join(sorted(manifest.scopes))})"
    if hypervisor and hypervisor.lower() not in manifest.hypervisors:
        return f"not for {hypervisor} (it serves {', '.join(sorted(manifest.hypervisors)) or 'none'})"
    return None


def described(plugin: LoadedPlugin, reason: str | None) -> dict[str, Any]:  # Any: JSON values
    """A plugin as GET /plugins shows it."""
    return {
        **plugin.manifest.summary(),
        "fits": reason is None,
        "reason": reason,
        "config_fields": config_fields(plugin),
    }


@router.get("/plugins", response_model=list[PluginOut], summary="The installed plugins and whether each fits")
async def list_plugins(
    request: Request,
    key: Viewer,
    role: Annotated[str | None, Query(max_length=32, description="primary, backup or image.")] = None,
    scope: Annotated[str | None, Query(max_length=32, description="host, cluster, zone or region.")] = None,
    hypervisor: Annotated[str | None, Query(max_length=32, description="kvm, vmware, ...")] = None,
) -> list[dict[str, Any]]:  # Any: JSON values
    """Every installed plugin, the ones that fit first; the others carry the reason they do not."""
    plugins = sorted(context_of(request).plugins.plugins.items())
    found = [described(plugin, misfit(plugin, role, scope, hypervisor)) for _, plugin in plugins]
    return sorted(found, key=lambda plugin: not plugin["fits"])


@router.get("/plugins/{name}", response_model=PluginOut, summary="One plugin, with its config JSON Schema")
async def show_plugin(request: Request, key: Viewer, name: str) -> dict[str, Any]:  # Any: JSON values
    """One plugin's manifest and config form (NotFound names the installed ones)."""
    return described(context_of(request).plugins.get(name), None)
