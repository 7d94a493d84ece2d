"""`strata plugins list|show`: the installed storage plugins, what they fit, and the fields a pool needs.

This is what a UI shows when an operator adds storage to a cluster: the plugins that fit (filtered by role, scope
and hypervisor), then the chosen plugin's config form from its model's JSON Schema, secrets marked.
"""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from schemas.errors import InvalidArgument, StrataError
from services.cli.talking import JsonOption, fail, make_console

if TYPE_CHECKING:  # the plugins are loaded when a command runs, so that `strata --help` stays fast
    from plugins.registry import Registry
    from plugins.sdk import LoadedPlugin

app = typer.Typer(help="Installed storage plugins (entry points of the `strata.plugins` group).")
console = make_console()


# CloudStack's hypervisor types, lower-cased as plugins' manifests name them; an installed plugin may add its own.
HYPERVISORS = frozenset({"kvm", "vmware", "xenserver", "hyperv", "lxc", "ovm3", "baremetal", "simulator"})


def choice(value: str | None, valid: "frozenset[str] | set[str]", flag: str) -> str | None:
    """`value` lower-cased if it is one of `valid`; else InvalidArgument naming the flag and every valid value."""
    if value is None:
        return None
    if value.lower() not in valid:
        raise InvalidArgument(f"{flag} {value!r} is not one of: {', '.join(sorted(valid))}", field=flag)
    return value.lower()


def _fits(plugin: "LoadedPlugin", role: str | None, scope: str | None, hypervisor: str | None) -> bool:
    manifest = plugin.manifest
    return (
        (role is None or role in manifest.roles)
        and (scope is None or scope in manifest.scopes)
        and (hypervisor is None or hypervisor in manifest.hypervisors)
    )


def config_fields(plugin: "LoadedPlugin") -> list[dict[str, Any]]:  # Any: values from a JSON Schema
    """The config form: one entry per field with its type, whether required or secret, default and help."""
    from plugins.sdk.config import secret_fields

    schema = plugin.manifest.config_model.model_json_schema()
    required = set(schema.get("required", []))
    secrets = secret_fields(schema)
    fields = []
    for name, prop in schema.get("properties", {}).items():
        types = [prop.get("type")] if "type" in prop else [v.get("type") for v in prop.get("anyOf", [])]
        field: dict[str, Any] = {  # Any: JSON values
            "name": name,
            "type": " | ".join(str(t) for t in types if t) or "object",
            "required": name in required,
            "secret": name in secrets,
            "description": prop.get("description", ""),
        }
        if "default" in prop:
            field["default"] = None if name in secrets else prop["default"]
        fields.append(field)
    return fields


def _describe(plugin: "LoadedPlugin") -> dict[str, Any]:  # Any: JSON values
    return {**plugin.manifest.summary(), "distribution": plugin.distribution, "config_fields": config_fields(plugin)}


def _registry() -> "Registry":
    from plugins.registry import load_plugins

    registry = load_plugins()
    for failure in registry.failures:
        console.print(f"[yellow]skipped:[/yellow] {failure.reason}", highlight=False)
    return registry


@app.command("list")
def list_plugins(
    role: Annotated[str | None, typer.Option("--role", help="primary, backup or image.")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="host, cluster, zone or region.")] = None,
    hypervisor: Annotated[str | None, typer.Option("--hypervisor", help="kvm, vmware, xenserver...")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the plugins that fit a role, scope and hypervisor (all of them without filters); the values are
    case-insensitive, and an unknown one is refused with the valid ones.

    Example: strata plugins list --hypervisor vmware --scope cluster
    """
    from plugins.sdk.capabilities import Role, Scope

    registry = _registry()
    installed = [plugin for _, plugin in sorted(registry.plugins.items())]
    try:
        role = choice(role, {each.value for each in Role}, "--role")
        scope = choice(scope, {each.value for each in Scope}, "--scope")
        known = HYPERVISORS | {name for plugin in installed for name in plugin.manifest.hypervisors}
        hypervisor = choice(hypervisor, known, "--hypervisor")
    except InvalidArgument as error:
        fail(error)
    chosen = [plugin for plugin in installed if _fits(plugin, role, scope, hypervisor)]
    if as_json:
        typer.echo(json.dumps([_describe(plugin) for plugin in chosen], indent=2, default=str))
        return
    if not chosen:
        asked = ", ".join(f"{k} {v}" for k, v in (("role", role), ("scope", scope), ("hypervisor", hypervisor)) if v)
        console.print(f"no installed plugin fits {asked or 'anything'} (installed: {', '.join(registry.plugins)})")
        return
    table = Table(title="storage plugins")
    for column in ("name", "version", "vendor", "roles", "scopes", "hypervisors", "locality", "capabilities"):
        table.add_column(column)
    for plugin in chosen:
        manifest = plugin.manifest
        table.add_row(
            manifest.name,
            manifest.version,
            manifest.vendor,
            ", ".join(sorted(manifest.roles)),
            ", ".join(sorted(manifest.scopes)),
            ", ".join(sorted(manifest.hypervisors)),
            manifest.locality.value,
            ", ".join(sorted(manifest.capabilities)),
        )
    console.print(table)


@app.command("show")
def show_plugin(
    name: Annotated[str, typer.Argument(help="The plugin's name.")],
    as_json: JsonOption = False,
) -> None:
    """Show one plugin's manifest, its config fields (secrets marked) and its default capacity thresholds."""
    try:
        plugin = _registry().get(name)
    except StrataError as error:
        console.print(f"[red]{type(error).__name__}:[/red] {error.message}", highlight=False)
        raise typer.Exit(1) from None
    described = _describe(plugin)
    if as_json:
        typer.echo(json.dumps(described, indent=2, default=str))
        return
    manifest = plugin.manifest
    about = Table(title=f"{manifest.name} {manifest.version} by {manifest.vendor}", show_header=False)
    about.add_column("", style="bold")
    about.add_column("")
    for key in ("description", "roles", "protocols", "scopes", "hypervisors", "locality", "capabilities"):
        value = described[key]
        about.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    console.print(about)
    form = Table(title="config fields")
    for column in ("field", "type", "required", "secret", "default", "description"):
        form.add_column(column)
    for field in described["config_fields"]:
        form.add_row(
            field["name"],
            field["type"],
            "yes" if field["required"] else "",
            "[red]secret[/red]" if field["secret"] else "",
            json.dumps(field["default"], default=str) if "default" in field else "",
            field["description"],
        )
    console.print(form)
    thresholds = Table(title="default capacity thresholds")
    thresholds.add_column("threshold")
    thresholds.add_column("value")
    for key, value in manifest.thresholds.model_dump().items():
        thresholds.add_row(key, str(value))
    console.print(thresholds)
