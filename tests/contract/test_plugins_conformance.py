"""Every plugin listed in `plugin_configs` passes the conformance kit, run the way a vendor runs it:
`pytest -p plugins.conformance --strata-plugin NAME --strata-plugin-config FILE` in its own process."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.plugin_configs import PLUGIN_CONFIGS

pytestmark = pytest.mark.contract
ROOT = Path(__file__).resolve().parents[2]
ALLOWED_SKIPS = (
    "not claimed by manifest",
    "declares no fault point",
    "does not adopt staged files",
    "does not lay out new content",
    "does not take block maps",
)


@pytest.mark.parametrize("name", sorted(PLUGIN_CONFIGS))
def test_plugin_passes_the_conformance_kit(name: str, tmp_path: Path) -> None:
    with PLUGIN_CONFIGS[name](tmp_path) as raw:
        config_file = tmp_path / f"{name}.json"
        config_file.write_text(json.dumps(raw))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "plugins.conformance",
                f"--strata-plugin={name}",
                # With `=`: pytest would otherwise take the file for a test path and root the run there.
                f"--strata-plugin-config={config_file}",
                "-p",
                "no:cacheprovider",
                "-q",
                "-rs",
                "--timeout=300",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} fails the conformance kit:\n{output[-6000:]}"
    assert re.search(r"\d+ passed", output), output[-2000:]
    for line in output.splitlines():
        if line.startswith("SKIPPED"):
            assert any(reason in line for reason in ALLOWED_SKIPS), f"unexpected skip: {line}"
