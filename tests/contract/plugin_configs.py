"""The plugins the conformance kit runs over in CI, and how each one's test config is built.

Each entry is a context manager factory: given the test's own directory, it starts whatever the plugin needs
(a server, a mount) and yields the raw config; leaving the block stops it and deletes what it made. String values
may use `{workdir}` (a fresh directory per conformance test) and `{unique}` (a random token per test).

Add a plugin by adding an entry here; the contract test picks it up.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ConfigFactory = Callable[[Path], AbstractContextManager[dict[str, object]]]


@contextmanager
def qcow2fs(workdir: Path) -> Iterator[dict[str, object]]:
    """A pool in the conformance test's own directory."""
    yield {"path": "{workdir}"}


@contextmanager
def rawfile(workdir: Path) -> Iterator[dict[str, object]]:
    """The example third-party plugin: raw sparse files in the test's own directory."""
    yield {"directory": "{workdir}"}


PLUGIN_CONFIGS: dict[str, ConfigFactory] = {
    "qcow2fs": qcow2fs,
    "rawfile": rawfile,
}
