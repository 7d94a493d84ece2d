"""Finding plugins: load every entry point of the `strata.plugins` group, validate each manifest, skip the bad ones.

A plugin that fails to import, resolves to something else than a `Plugin`, or has a broken manifest is reported with
the reason (naming the plugin and the field) and skipped; the others load. Configs are validated here too, with
errors that name the plugin and the field and never repeat the value given (it may be a password).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from pydantic import ValidationError

from plugins.sdk.config import PluginConfig
from plugins.sdk.errors import InvalidArgument, NotFound
from plugins.sdk.plugin import LoadedPlugin, Plugin

ENTRY_POINT_GROUP = "strata.plugins"


@dataclass(frozen=True)
class PluginLoadFailure:
    """A plugin that was skipped, and why."""

    name: str
    reason: str
    field: str | None = None


@dataclass(frozen=True)
class Registry:
    """The plugins that loaded, by name, and the ones that did not."""

    plugins: dict[str, LoadedPlugin] = field(default_factory=dict)
    failures: tuple[PluginLoadFailure, ...] = ()

    def get(self, name: str) -> LoadedPlugin:
        """The loaded plugin called `name`; `NotFound` (with the load failure's reason, if any) otherwise."""
        if name in self.plugins:
            return self.plugins[name]
        for failure in self.failures:
            if failure.name == name:
                raise NotFound(f"plugin {name!r} did not load: {failure.reason}", field=failure.field)
        known = ", ".join(sorted(self.plugins)) or "none"
        raise NotFound(f"no plugin named {name!r} is installed (installed: {known})")


def _field_of(error: ValidationError) -> str:
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "__root__"


def describe_validation(error: ValidationError) -> str:
    """The problems of a validation error as `field: message` pairs, without the offending values."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(whole)"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def load_entry_point(entry_point_name: str, target: object) -> LoadedPlugin:
    """Validate what an entry point resolved to; raises `InvalidArgument` naming the plugin and the field."""
    if not isinstance(target, Plugin):
        raise InvalidArgument(
            f"plugin {entry_point_name!r}: the entry point resolves to {type(target).__name__}, "
            "not a plugins.sdk.Plugin"
        )
    try:
        manifest = target.validated_manifest()
    except ValidationError as error:
        raise InvalidArgument(
            f"plugin {entry_point_name!r}: invalid manifest: {describe_validation(error)}", field=_field_of(error)
        ) from None
    if manifest.name != entry_point_name:
        raise InvalidArgument(
            f"plugin {entry_point_name!r}: manifest name {manifest.name!r} differs from the entry point name",
            field="name",
        )
    return LoadedPlugin(name=entry_point_name, manifest=manifest, plugin=target)


def _resolve(entry_point: EntryPoint) -> LoadedPlugin:
    try:
        target = entry_point.load()
    except ValidationError as error:
        # A manifest built at import time (PluginManifest(...)) fails while the module loads.
        raise InvalidArgument(
            f"plugin {entry_point.name!r}: invalid manifest: {describe_validation(error)}", field=_field_of(error)
        ) from None
    except Exception as error:  # a third party's import can fail in any way; it must not stop the others
        raise InvalidArgument(
            f"plugin {entry_point.name!r}: cannot be imported from {entry_point.value!r}: {type(error).__name__}"
        ) from None
    loaded = load_entry_point(entry_point.name, target)
    dist = entry_point.dist.name if entry_point.dist is not None else None
    return LoadedPlugin(name=loaded.name, manifest=loaded.manifest, plugin=loaded.plugin, distribution=dist)


def load_plugins(found: Iterable[EntryPoint] | None = None) -> Registry:
    """Load every installed plugin (or the given entry points); bad ones are reported in `failures`, not raised."""
    candidates = entry_points(group=ENTRY_POINT_GROUP) if found is None else found
    plugins: dict[str, LoadedPlugin] = {}
    failures: list[PluginLoadFailure] = []
    for entry_point in sorted(candidates, key=lambda each: each.name):
        if entry_point.name in plugins:
            failures.append(PluginLoadFailure(entry_point.name, "another installed package has the same name"))
            continue
        try:
            plugins[entry_point.name] = _resolve(entry_point)
        except InvalidArgument as error:
            failures.append(PluginLoadFailure(entry_point.name, error.message, error.field))
    return Registry(plugins=plugins, failures=tuple(failures))


def validate_config(plugin: LoadedPlugin, raw: Mapping[str, object]) -> PluginConfig:
    """Build the plugin's config model from `raw`; `InvalidArgument` names the plugin and the (first) bad field.

    Only the field names and pydantic's messages are reported, never the input, so a password cannot leak.
    """
    try:
        return plugin.manifest.config_model.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidArgument(
            f"plugin {plugin.name!r}: invalid config: {describe_validation(error)}", field=_field_of(error)
        ) from None
