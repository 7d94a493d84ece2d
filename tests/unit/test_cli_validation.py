"""The operator CLI refuses bad input before sending anything, with an error that names what to fix.

STRATA_AMQP_URL points at a port where nothing listens: a command that tried to reach the bus would fail with a
connection error, so an InvalidArgument (or a usage error) proves nothing was sent.
"""

import uuid

import pytest
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()
NOWHERE = {"STRATA_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", "STRATA_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}


def _invoke(*args: str, input_text: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=NOWHERE, input=input_text)
    return result.exit_code, result.output


def test_pool_add_names_the_missing_config_field_and_sends_nothing() -> None:
    code, output = _invoke("pool", "add", "p1", "--plugin", "qcow2fs", "--host", "h1", "--cluster", "c1")
    assert code == 1
    assert "InvalidArgument" in output
    assert "path" in output
    assert "Field required" in output


def test_pool_add_refuses_a_relative_path_naming_the_field() -> None:
    code, output = _invoke(
        "pool", "add", "p1", "--plugin", "qcow2fs", "--host", "h1", "--cluster", "c1", "-c", "path=x"
    )
    assert code == 1
    assert "path" in output
    assert "absolute" in output


def test_pool_add_refuses_a_config_pair_without_equals() -> None:
    code, output = _invoke("pool", "add", "p1", "--plugin", "qcow2fs", "-c", "path")
    assert code == 1
    assert "key=value" in output


def test_pool_add_refuses_config_json_that_is_not_an_object() -> None:
    code, output = _invoke("pool", "add", "p1", "--plugin", "qcow2fs", "--config-json", "[1, 2]")
    assert code == 1
    assert "JSON object" in output


def test_pool_add_names_the_installed_plugins_when_the_plugin_is_unknown() -> None:
    code, output = _invoke("pool", "add", "p1", "--plugin", "no-such-plugin", "-c", "path=/tmp")
    assert code == 1
    assert "no plugin named 'no-such-plugin'" in output
    assert "qcow2fs" in output


def test_pool_add_refuses_a_host_scope_without_its_host() -> None:
    code, output = _invoke("pool", "add", "p1", "--plugin", "qcow2fs", "-c", "path=/tmp", "--cluster", "c1")
    assert code == 1
    assert "host" in output


def test_a_given_secret_is_never_echoed_in_an_error() -> None:
    code, output = _invoke(
        "pool", "add", "p1", "--plugin", "s3", "-c", "secret_key=hunter2-very-secret", "-c", "access_key=a"
    )
    assert code == 1
    assert "endpoint" in output  # the field that is missing
    assert "hunter2" not in output


def test_a_missing_secret_is_prompted_with_hidden_input_and_never_echoed() -> None:
    code, output = _invoke(
        "pool", "add", "p1", "--plugin", "s3", "-c", "access_key=a", "-c", "bucket=b", input_text="hunter2-typed\n"
    )
    assert "secret_key (secret, not echoed)" in output
    assert "hunter2" not in output
    assert code == 1
    assert "endpoint" in output


@pytest.mark.parametrize(
    ("interval", "schedule", "timezone", "field"),
    [
        ("DAILY", "99:00", "UTC", "schedule"),
        ("HOURLY", "00:01", "UTC", "schedule"),
        ("WEEKLY", "00:01:9", "UTC", "schedule"),
        ("MONTHLY", "00:01:31", "UTC", "schedule"),
        ("FORTNIGHTLY", "00", "UTC", "interval_type"),
        ("DAILY", "30:02", "Mars/Olympus", "timezone"),
    ],
)
def test_snapshot_policy_create_refuses_a_bad_policy_naming_the_field(
    interval: str, schedule: str, timezone: str, field: str
) -> None:
    code, output = _invoke(
        "snapshot-policy", "create", "v1", "--interval", interval, "--schedule", schedule, "--timezone", timezone
    )
    assert code == 1
    assert "InvalidArgument" in output
    assert f"field: {field}" in output


def test_snapshot_policy_create_refuses_keeping_no_snapshot() -> None:
    code, output = _invoke(
        "snapshot-policy", "create", "v1", "--interval", "HOURLY", "--schedule", "05", "--max-snaps", "0"
    )
    assert code == 1
    assert "max_snaps" in output


@pytest.mark.parametrize("size", ["ten", "0", "5X", "1.5G"])
def test_volume_create_refuses_a_bad_size(size: str) -> None:
    code, output = _invoke("volume", "create", "v1", size)
    assert code == 2
    assert "SIZE" in output


def test_volume_create_refuses_a_bad_name() -> None:
    code, output = _invoke("volume", "create", "bad name!", "1G")
    assert code == 1
    assert "name" in output


def test_vm_revert_refuses_a_bad_pair() -> None:
    vm, snapshot = str(uuid.uuid4()), str(uuid.uuid4())
    code, output = _invoke("vm", "revert", vm, snapshot, "--host", "h1", "--pair", "not-a-pair")
    assert code == 1
    assert "VOLUME_ID=SNAPSHOT_ID" in output


def test_vm_revert_refuses_a_volume_listed_twice() -> None:
    vm, snapshot, volume = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    pairs = ["--pair", f"{volume}={uuid.uuid4()}", "--pair", f"{volume}={uuid.uuid4()}"]
    code, output = _invoke("vm", "revert", vm, snapshot, "--host", "h1", *pairs)
    assert code == 1
    assert "listed twice" in output


def test_ids_that_are_not_uuids_are_usage_errors() -> None:
    code, output = _invoke("bridge", "events", "--entity", "not-a-uuid")
    assert code == 2
    assert "not a UUID" in output


def test_run_refuses_an_unknown_service() -> None:
    code, output = _invoke("run", "billing")
    assert code == 2
    assert "billing" in output
