"""The CLI says what is true, in the words an operator typed: flags by their names, valid values listed, errors as
JSON when JSON was asked for, nothing half-printed.

STRATA_AMQP_URL points at a port where nothing listens: a command that reached for the bus would fail with a
connection error, so the refusals below prove that nothing was sent.
"""

import json

import pytest
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()
NOWHERE = {"STRATA_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", "STRATA_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
POOL = ["pool", "add", "p1", "--plugin", "qcow2fs", "-c", "path=/srv/pool"]


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env or NOWHERE)
    return result.exit_code, result.stdout, result.stderr


def test_plugins_list_takes_any_case_and_answers_the_vmware_cluster_question() -> None:
    code, out, _ = _invoke("plugins", "list", "--hypervisor", "VMware", "--scope", "Cluster")
    assert code == 0, out
    assert "no installed plugin fits scope cluster, hypervisor vmware" in out
    code, out, _ = _invoke("plugins", "list", "--hypervisor", "KVM", "--scope", "HOST", "--json")
    assert code == 0
    assert "qcow2fs" in [plugin["name"] for plugin in json.loads(out)]


@pytest.mark.parametrize(
    ("flag", "value", "valid"),
    [("--hypervisor", "vmwar", "vmware"), ("--scope", "clutser", "cluster"), ("--role", "primry", "primary")],
)
def test_plugins_list_refuses_an_unknown_value_listing_the_valid_ones(flag: str, value: str, valid: str) -> None:
    code, _, err = _invoke("plugins", "list", flag, value)
    assert code == 1
    assert f"{flag} '{value}' is not one of:" in err
    assert valid in err


def test_pool_add_s_default_scope_names_the_flags_it_needs_not_a_field() -> None:
    code, _, err = _invoke(*POOL)
    assert code == 1
    assert "needs --host HOST (its cluster is the one the host's agent registered" in " ".join(err.split())
    assert "cluster_id" not in err
    code, _, err = _invoke(*POOL, "--scope", "cluster")
    assert code == 1
    assert "needs --cluster CLUSTER" in " ".join(err.split())


def test_pool_add_checks_the_hypervisor_scope_and_role_against_the_plugin_s_manifest() -> None:
    code, _, err = _invoke(*POOL, "--host", "h1", "--cluster", "c1", "--hypervisor", "vmware")
    assert code == 1
    assert "--hypervisor vmware: plugin qcow2fs serves kvm" in " ".join(err.split())
    code, _, err = _invoke(*POOL, "--scope", "zone")
    assert code == 1
    assert "--scope zone: plugin qcow2fs serves cluster, host" in " ".join(err.split())
    s3 = ["-c", "endpoint=http://s3", "-c", "bucket=bucket", "-c", "access_key=a", "-c", "secret_key=s"]
    code, _, err = _invoke("pool", "add", "p1", "--plugin", "s3", *s3, "--scope", "zone")
    assert code == 1
    assert "plugin s3 is not primary storage" in " ".join(err.split())


def test_a_missing_secret_with_no_one_to_answer_names_the_field_and_how_to_pass_it() -> None:
    args = ["image-store", "add", "st", "--plugin", "s3", "-c", "endpoint=http://s3", "-c", "bucket=b"]
    code, _, err = _invoke(*args, "-c", "access_key=k")
    assert code == 1
    said = " ".join(err.split())
    assert "the secret field 'secret_key' is missing and no one answered its prompt" in said
    assert "-c secret_key=... or --config-json" in said


def test_an_error_asked_for_as_json_is_json_on_stdout() -> None:
    code, out, _ = _invoke("plugins", "list", "--role", "nope", "--json")
    assert code == 1
    error = json.loads(out)["error"]
    assert (error["class"], error["code"], error["field"]) == ("InvalidArgument", "INVALID_ARGUMENT", "--role")
    code, out, _ = _invoke(*POOL, "--json")
    assert code == 1
    assert json.loads(out)["error"]["field"] == "host"


def test_a_bad_strata_amqp_url_is_one_line_never_a_traceback_nor_the_url() -> None:
    env = {**NOWHERE, "STRATA_AMQP_URL": "rabbit-password-s3cret"}
    code, out, err = _invoke("pool", "list", env=env)
    assert code == 1
    assert "STRATA_AMQP_URL is not an AMQP URL" in err
    assert "Traceback" not in out + err
    assert "s3cret" not in out + err


def test_a_pattern_in_an_error_is_printed_whole() -> None:
    code, _, err = _invoke("volume", "create", "bad name!", "1G")
    assert code == 1
    said = " ".join(err.split())
    assert r"String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$'" in said


def test_flags_show_no_value_in_help() -> None:
    code, out, _ = _invoke("pool", "list", "--help")
    assert code == 0
    assert "--json" in out
    assert "<bool>" not in out


def test_dlq_purge_all_asks_first() -> None:
    code, out, err = _invoke("dlq", "purge", "--all")
    assert code == 1
    assert "needs --yes" in out + err
