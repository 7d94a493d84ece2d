"""`strata demo` as a user runs it: a subprocess on the embedded default, exit 0 only when the data are back."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

STORY = [
    "pool demo-pool added",
    "running with 3 volumes",
    "VM snapshot taken (3 volume snapshots)",
    "VM reverted (restarted: True)",
    "the VM runs again",
    "vm.revert_to_snapshot v1",
    "COMPLETED",
    "the data are back: demo passed",
]


def test_demo_tells_the_whole_story_and_passes() -> None:
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install qemu-utils", pytrace=False)
    strata = Path(sys.executable).parent / "strata"
    # The embedded default: no servers named, so the demo starts its own PostgreSQL and uses the in-memory bus.
    env = {key: value for key, value in os.environ.items() if key not in {"STRATA_AMQP_URL", "STRATA_DATABASE_URL"}}
    env["COLUMNS"] = "200"  # the timeline's table, unwrapped
    done = subprocess.run([str(strata), "demo"], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"strata demo exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    for line in STORY:
        assert line in done.stdout, f"{line!r} missing from the story:\n{done.stdout}"
    assert done.stdout.count("✓ demo-vm-disk") == 3
    assert "✗" not in done.stdout
