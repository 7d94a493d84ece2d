"""Fixtures every tier shares: the servers (checked, never skipped), a RabbitMQ namespace and a database per test."""

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.runtime.sealing import KEY_BYTES, SecretSealer
from tests.broker_sweep import sweep
from tests.bus_fixtures import memory_transport, rabbit_transport  # noqa: F401  # the bus fixtures

AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _require_server(url: str, what: str, how: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        socket.create_connection((host, port or 0), timeout=3).close()
    except OSError as error:
        pytest.fail(f"{what} is not reachable at {host}:{port} ({error}); {how}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def secret_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The deployment key of this test run (created on first use), for every daemon and subprocess it starts."""
    path = tmp_path_factory.mktemp("keys") / "secret.key"
    previous = os.environ.get("STRATA_SECRET_KEY_FILE")
    os.environ["STRATA_SECRET_KEY_FILE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("STRATA_SECRET_KEY_FILE", None)
    else:
        os.environ["STRATA_SECRET_KEY_FILE"] = previous


@pytest.fixture(scope="session", autouse=True)
def free_ports() -> Iterator[None]:
    """Every daemon a test starts (in its process or as a subprocess) listens on a port the system picks: two test
    runs on one machine (or a developer's `strata up`) never fight over 8080 or the health port."""
    saved = {name: os.environ.get(name) for name in ("STRATA_API_PORT", "STRATA_HEALTH_PORT")}
    os.environ.update(STRATA_API_PORT="0", STRATA_HEALTH_PORT="0")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def sealer() -> SecretSealer:
    """A sealer with a key of its own, for services built in the test's process."""
    return SecretSealer(os.urandom(KEY_BYTES))


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ to test against; fails (never skips) with what to start if it is down."""
    _require_server(AMQP_URL, "RabbitMQ", "start it with `rabbitmq-server -detached` or set STRATA_AMQP_URL")
    return AMQP_URL


_HANDED_OUT: list[str] = []  # every namespace of this run, for the sweep at its end


@pytest.fixture
def namespace() -> str:
    """A namespace of this test's own: every exchange and queue it declares starts with it."""
    name = f"t{uuid.uuid4().hex[:10]}"
    _HANDED_OUT.append(name)
    return name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: delete the queues its tests left on the broker (`tests/broker_sweep.py`), and say so."""
    try:
        said = sweep(AMQP_URL, _HANDED_OUT)
    except Exception as error:  # the sweep must never turn a run's result into an error
        said = f"broker sweep failed: {type(error).__name__}: {error}"
    if said:
        terminalreporter.write_line(said)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server's maintenance database; fails with what to start if it is down."""
    _require_server(
        DATABASE_URL,
        "PostgreSQL",
        "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
        "or set STRATA_DATABASE_URL",
    )
    return DATABASE_URL


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A database of this test's own, dropped afterwards."""
    name = f"strata_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(postgres_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
