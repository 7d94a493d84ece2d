"""The README's first two commands, run exactly as written in a fresh clone of this commit, as a new operator would.

`scripts/demo` must set everything up and then tell the demo's story; `scripts/test` must set up, lint, type-check,
check the layering and run pytest. The test command gets a small pytest selection as its extra arguments (the
README says they go to pytest), so that every stage runs without this test running the whole suite again.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_demo import STORY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

REPOSITORY = Path(__file__).resolve().parents[2]
SET_UP_SECONDS = 900  # a fresh clone installs its own .venv (pip, libvirt-python built once) before anything runs
# A small selection: the README says extra arguments go to pytest; every stage before pytest still runs.
SMALL_SELECTION = "tests/unit/test_cli_sending.py"
TEST_STAGES = ["== ruff", "== mypy --strict", "== import-linter", "== pytest"]


def _user_environment() -> dict[str, str]:
    """The environment of a new operator's shell: no virtual environment, no pytest, no strata server settings."""
    inside = str(REPOSITORY)
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if not entry.startswith(inside)]
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "STRATA_AMQP_URL", "STRATA_DATABASE_URL", "STRATA_NAMESPACE"}
    env = {key: value for key, value in os.environ.items() if key not in dropped and not key.startswith("PYTEST_")}
    env["PATH"] = os.pathsep.join(path)
    env["COLUMNS"] = "200"  # the demo's tables unwrapped, so that the story's lines are whole
    return env


@pytest.fixture
def fresh_clone() -> Iterator[Path]:
    """A `git clone` of the commit under test, with nothing of this checkout's set-up (no .venv); removed after.

    Not under pytest's tmp_path: every pytest session on the machine sets /tmp/pytest-of-USER back to mode 0700,
    and as root the embedded PostgreSQL runs the clone's .venv binaries as another user, who must reach them.
    """
    if shutil.which("git") is None:
        pytest.fail("git is missing: apt-get install git", pytrace=False)
    commit = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    base = Path(tempfile.mkdtemp(prefix="strata-readme-"))
    clone = base / "strata"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "--detach", commit], check=True)
    yield clone
    shutil.rmtree(base, ignore_errors=True)  # its .venv is hundreds of MB


def _run_as_written(command: str, clone: Path) -> subprocess.CompletedProcess[str]:
    """`command` typed in a shell at the clone's top, as the README writes it."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=_user_environment(),
        capture_output=True,
        text=True,
        timeout=SET_UP_SECONDS,
        check=False,
    )


def test_the_readme_first_two_commands_work_in_a_fresh_clone(fresh_clone: Path) -> None:
    demo = _run_as_written("scripts/demo", fresh_clone)
    assert demo.returncode == 0, f"scripts/demo exited {demo.returncode}\n{demo.stdout}\n{demo.stderr}"
    for line in STORY:
        assert line in demo.stdout, f"{line!r} missing from the demo's story:\n{demo.stdout}\n{demo.stderr}"

    test = _run_as_written(f"scripts/test {SMALL_SELECTION} -q", fresh_clone)
    output = test.stdout + test.stderr
    assert test.returncode == 0, f"scripts/test exited {test.returncode}\n{output}"
    for stage in TEST_STAGES:
        assert stage in output, f"{stage!r} never ran:\n{output}"
    assert " passed" in test.stdout, f"pytest ran no test:\n{output}"
