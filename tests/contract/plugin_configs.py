"""The plugins the conformance kit runs over in CI, and how each one's test config is built.

Each entry is a context manager factory: given the test's own directory, it starts whatever the plugin needs
(a server, a mount) and yields the raw config; leaving the block stops it and deletes what it made. String values
may use `{workdir}` (a fresh directory per conformance test) and `{unique}` (a random token per test).

Add a plugin by adding an entry here; the contract test picks it up.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tests.seaweed import run_seaweed

ConfigFactory = Callable[[Path], AbstractContextManager[dict[str, object]]]


@contextmanager
def qcow2fs(workdir: Path) -> Iterator[dict[str, object]]:
    """A pool in the conformance test's own directory."""
    yield {"path": "{workdir}"}


@contextmanager
def rawfile(workdir: Path) -> Iterator[dict[str, object]]:
    """The example third-party plugin: raw sparse files in the test's own directory."""
    yield {"directory": "{workdir}"}


@contextmanager
def fsbackup(workdir: Path) -> Iterator[dict[str, object]]:
    """A backup and image store in the conformance test's own directory."""
    yield {"path": "{workdir}"}


@contextmanager
def s3(workdir: Path) -> Iterator[dict[str, object]]:
    """A real SeaweedFS for the whole run; each conformance test gets its own prefix in one bucket (a bucket per
    test would make SeaweedFS grow a collection of volumes per test)."""
    with run_seaweed() as server:
        yield {
            "endpoint": server.endpoint_url,
            "region": server.region,
            "bucket": "conformance",
            "create_bucket": True,
            "prefix": "test-{unique}",
            "access_key": server.access_key,
            "secret_key": server.secret_key,
        }


PLUGIN_CONFIGS: dict[str, ConfigFactory] = {
    "qcow2fs": qcow2fs,
    "rawfile": rawfile,
    "fsbackup": fsbackup,
    "s3": s3,
}
