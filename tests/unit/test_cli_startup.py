"""`strata --help` builds the whole command tree without importing what the commands run on.

The bus (aio-pika, asyncpg), the services, the plugins and most message modules are imported inside the commands,
when one runs; building the CLI imports typer, rich and the enums its options take. These tests check which modules
a fresh interpreter has imported, never how long it took.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
# Each of these was imported when the CLI was built, before the commands came to import it themselves.
HEAVY = (
    "aio_pika",
    "aiormq",
    "asyncpg",
    "bus.codec",
    "bus.facade",
    "bus.postgres",
    "bus.rabbit",
    "bus.settings",
    "plugins.registry",
    "plugins.sdk",
    "pydantic_settings",
    "rich.progress",
    "sagas.postgres_store",
    "schemas.snapshot",
    "schemas.storage_queries",
    "services.agent.bootstrap",
    "services.agent.settings",
    "services.catalog",
    "services.cli.sending",
    "services.domain.policies",
    "services.runtime.settings",
    "services.stack",
    "structlog",
)
# Builds every command (typer reads each signature) and renders the help of the root and of each group.
SHOW_EVERY_HELP = """
import typer
from typer.testing import CliRunner
from services.cli.main import app
command = typer.main.get_command(app)
for args in [[], *([name] for name in command.commands)]:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, (args, result.output)
"""


def _imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_none_of_the_machinery() -> None:
    imported = _imported_after("import services.cli.main")
    assert "services.cli.main" in imported
    assert sorted(imported.intersection(HEAVY)) == []


def test_every_help_page_is_shown_without_importing_the_machinery() -> None:
    imported = _imported_after(SHOW_EVERY_HELP)
    assert "typer" in imported
    assert sorted(imported.intersection(HEAVY)) == []


def test_the_root_help_lists_every_group_and_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("demo", "asyncapi", "dlq", "events", "saga", "plugins", "pool", "volume", "snapshot", "vm", "run"):
        assert name in result.output
    assert "snapshot-policy" in result.output


def test_a_group_help_lists_its_commands() -> None:
    result = runner.invoke(app, ["pool", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("add", "list", "show", "enable", "disable", "maintain", "cancel-maintenance", "delete"):
        assert name in result.output


def test_a_command_help_shows_the_choices_of_an_enum_option() -> None:
    result = runner.invoke(app, ["pool", "add", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--scope" in result.output
    for scope in ("host", "cluster", "zone"):
        assert scope in result.output


def test_the_daemons_are_choices_of_run() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for service in ("storage", "snapshot", "orchestrator", "agent"):
        assert service in result.output
