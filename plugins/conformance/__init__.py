"""The conformance kit: a pytest plugin that runs any installed strata plugin through its whole life cycle.

    pytest -p plugins.conformance --strata-plugin NAME --strata-plugin-config FILE

FILE is JSON (or TOML) with the plugin's config fields. Two placeholders are replaced in every string value, per
test: `{workdir}` by a fresh directory of the test's own (removed afterwards) and `{unique}` by a random token
(for bucket names, LUN prefixes...). For each role the manifest claims, the kit runs the life cycle, calls every
mutating operation twice to prove idempotency, checks that a conflicting reuse of an id is refused, skips what the
manifest does not claim, deletes what it created, and crashes the life cycle at each of the plugin's fault points
to check that calling the interrupted operation again reconciles.

Without `--strata-plugin` the kit does nothing, so having it installed does not change other test runs.
"""

from pathlib import Path

import pytest

SUITE = Path(__file__).with_name("suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The kit's two options."""
    group = parser.getgroup("strata-conformance", "strata plugin conformance kit")
    group.addoption("--strata-plugin", default=None, help="Name of the installed strata plugin to check.")
    group.addoption(
        "--strata-plugin-config",
        default=None,
        help="JSON or TOML file with the plugin's config ({workdir} and {unique} are replaced per test).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """With `--strata-plugin`, collect the kit's suite (instead of the project's tests unless paths were given)."""
    if config.getoption("strata_plugin") is None:
        return
    config.addinivalue_line("markers", "strata_conformance: a test of the strata plugin conformance kit")
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        config.args.append(str(SUITE))
    else:
        config.args[:] = [str(SUITE)]
