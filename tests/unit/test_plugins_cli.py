"""`strata plugins list|show`: filters, JSON output, and secret fields marked."""

import json

import pytest
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()


def _names(*args: str) -> list[str]:
    result = runner.invoke(app, ["plugins", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [plugin["name"] for plugin in json.loads(result.stdout)]


def test_list_shows_every_installed_plugin_with_its_manifest() -> None:
    result = runner.invoke(app, ["plugins", "list", "--json"])
    listed = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert {"qcow2fs", "rawfile"} <= set(listed)
    assert "delta_snapshot" in listed["qcow2fs"]["capabilities"]
    assert listed["rawfile"]["distribution"] == "strata-rawfile"


def test_list_filters_by_hypervisor_scope_and_role() -> None:
    fitting = _names("--hypervisor", "kvm", "--scope", "cluster", "--role", "primary")
    assert "qcow2fs" in fitting
    assert "rawfile" not in fitting  # host scope only
    assert _names("--hypervisor", "vmware") == []


def test_show_lists_config_fields_and_thresholds() -> None:
    result = runner.invoke(app, ["plugins", "show", "qcow2fs", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    fields = {field["name"]: field for field in shown["config_fields"]}
    assert fields["path"]["required"]
    assert fields["qemu_img"]["default"] == "qemu-img"
    assert shown["thresholds"]["stop_allocation_fraction"] == 0.85
    table = runner.invoke(app, ["plugins", "show", "qcow2fs"])
    assert "config fields" in table.stdout


def test_show_of_an_unknown_plugin_fails_with_the_installed_ones() -> None:
    result = runner.invoke(app, ["plugins", "show", "nope"])
    assert result.exit_code == 1
    assert "qcow2fs" in result.stdout
