"""The registry: installed plugins load, a broken one is reported (naming the plugin and the field) and skipped,
configs are validated with errors that name the plugin and the field and never repeat a secret."""

from importlib.metadata import EntryPoint

import pytest
from pydantic import Field, SecretStr

from plugins.qcow2fs import Qcow2fsDriver
from plugins.registry import ENTRY_POINT_GROUP, load_entry_point, load_plugins, validate_config
from plugins.sdk import Capability, Locality, Plugin, PluginConfig, PluginManifest, Role, Scope, faults
from plugins.sdk.errors import InvalidArgument, NotFound

pytestmark = pytest.mark.unit


class IscsiConfig(PluginConfig):
    server_ip: str = Field(description="Array management address.")
    username: str = Field(description="Array user.")
    password: SecretStr = Field(description="Array password.")


def _manifest(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "vendor-iscsi",
        "vendor": "Example Arrays",
        "version": "2.1.0",
        "roles": ["primary"],
        "protocols": ["iscsi"],
        "scopes": ["cluster"],
        "hypervisors": ["vmware"],
        "locality": "shared",
        "capabilities": ["snapshot", "revert_to_snapshot"],
        "config_model": IscsiConfig,
    }
    return base | changes


GOOD = Plugin(manifest=_manifest(), factory=Qcow2fsDriver)
BROKEN = Plugin(manifest=_manifest(roles="storage-of-sorts"), factory=Qcow2fsDriver)
NOT_A_PLUGIN = object()


def _entry(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=target, group=ENTRY_POINT_GROUP)


def test_the_installed_plugins_load() -> None:
    registry = load_plugins()
    assert {"qcow2fs", "rawfile"} <= set(registry.plugins)
    assert registry.plugins["qcow2fs"].manifest.capabilities >= {Capability.DELTA_SNAPSHOT, Capability.COALESCE}


def test_a_broken_plugin_is_reported_with_its_field_and_the_others_load() -> None:
    registry = load_plugins(
        [
            _entry("vendor-iscsi", "tests.unit.test_plugins_registry:GOOD"),
            _entry("broken", "tests.unit.test_plugins_registry:BROKEN"),
            _entry("broken-at-import", "tests.unit.plugins_broken_at_import:plugin"),
            _entry("not-a-plugin", "tests.unit.test_plugins_registry:NOT_A_PLUGIN"),
            _entry("missing", "tests.unit.no_such_module:plugin"),
        ]
    )
    assert set(registry.plugins) == {"vendor-iscsi"}
    failures = {failure.name: failure for failure in registry.failures}
    assert failures["broken"].field == "roles"
    assert "'broken'" in failures["broken"].reason
    assert "roles" in failures["broken"].reason
    assert "'broken-at-import'" in failures["broken-at-import"].reason
    assert "host scope" in failures["broken-at-import"].reason
    assert "not a plugins.sdk.Plugin" in failures["not-a-plugin"].reason
    assert "cannot be imported" in failures["missing"].reason
    with pytest.raises(NotFound, match="'broken' did not load"):
        registry.get("broken")


def test_the_manifest_name_must_match_the_entry_point() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_entry_point("another-name", GOOD)
    assert caught.value.field == "name"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vendor": ""}, "vendor"),
        ({"version": "latest"}, "version"),
        ({"name": "Bad Name"}, "name"),
        ({"capabilities": ["teleport"]}, "capabilities"),
        ({"roles": ["backup"], "capabilities": ["snapshot"]}, "__root__"),
        ({"hypervisors": []}, "__root__"),
    ],
)
def test_manifest_rules(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_entry_point("vendor-iscsi", Plugin(manifest=_manifest(**changes), factory=Qcow2fsDriver))
    assert caught.value.field is not None
    assert caught.value.field.split(".")[0] == field
    assert "'vendor-iscsi'" in caught.value.message


def test_a_missing_config_field_is_named() -> None:
    plugin = load_entry_point("vendor-iscsi", GOOD)
    with pytest.raises(InvalidArgument) as caught:
        validate_config(plugin, {"server_ip": "10.0.0.5", "password": "s3cr3t-value"})
    assert caught.value.field == "username"
    assert "'vendor-iscsi'" in caught.value.message
    assert "s3cr3t-value" not in caught.value.message


def test_a_wrong_config_field_is_named_without_echoing_the_secret() -> None:
    plugin = load_entry_point("vendor-iscsi", GOOD)
    raw = {"server_ip": "10.0.0.5", "username": "admin", "password": ["hunter2-secret"], "pasword": "typo-secret"}
    with pytest.raises(InvalidArgument) as caught:
        validate_config(plugin, raw)
    assert caught.value.field == "password"
    assert "pasword" in caught.value.message
    assert "hunter2-secret" not in caught.value.message
    assert "typo-secret" not in caught.value.message
    config = validate_config(plugin, {"server_ip": "10.0.0.5", "username": "admin", "password": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config)


def test_qcow2fs_config_refuses_a_relative_path() -> None:
    plugin = load_plugins().get("qcow2fs")
    with pytest.raises(InvalidArgument, match=r"'qcow2fs'.*path") as caught:
        validate_config(plugin, {"path": "relative/dir"})
    assert caught.value.field == "path"


async def test_fault_points_crash_once_when_armed_and_cost_nothing_otherwise() -> None:
    await faults.point("test.point")
    faults.arm("test.point", skip=1)
    await faults.point("test.point")
    with pytest.raises(faults.InjectedCrash, match=r"test\.point"):
        await faults.point("test.point")
    await faults.point("test.point")
    assert faults.hits("test.point") == 4
    assert not isinstance(faults.InjectedCrash("x"), Exception)


def test_manifest_summary_is_plain_json() -> None:
    manifest = PluginManifest.model_validate(_manifest())
    summary = manifest.summary()
    assert summary["roles"] == ["primary"]
    assert summary["locality"] == Locality.SHARED.value
    assert summary["scopes"] == [Scope.CLUSTER.value]
    assert Role.PRIMARY in manifest.roles
