"""Pure logic of bus/postgres: error translation, back-off, query and schema validation, migration files."""

from datetime import UTC, datetime

import asyncpg
import pytest

from bus.postgres import JournalQuery, RelaySettings
from bus.postgres.errors import translate
from bus.postgres.migrate import BUS_MIGRATIONS, load_migrations, validate_schema
from schemas import AlreadyExists, FailedPrecondition, InvalidArgument, StrataError, Transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.exceptions.SerializationError("could not serialize"), Transient),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), Transient),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), Transient),
        (asyncpg.exceptions.AdminShutdownError("terminating"), Transient),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), Transient),
        (ConnectionRefusedError(111, "refused"), Transient),
        (asyncpg.InternalClientError("cannot switch to state 15"), Transient),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), AlreadyExists),
        (asyncpg.exceptions.UndefinedTableError("no table"), FailedPrecondition),
        (asyncpg.exceptions.CheckViolationError("check"), InvalidArgument),
        (asyncpg.exceptions.SyntaxOrAccessError("syntax"), StrataError),
    ],
)
def test_driver_errors_translate_to_their_meaning(error: Exception, expected: type[StrataError]) -> None:
    translated = translate(error)

    assert type(translated) is expected
    assert translated.retryable is (expected is Transient)


def test_translation_keeps_the_detail_out() -> None:
    error = asyncpg.exceptions.UniqueViolationError("duplicate key value")
    error.detail = "Key (password)=(hunter2) already exists."

    assert "hunter2" not in translate(error).message


def test_back_off_doubles_up_to_its_ceiling() -> None:
    settings = RelaySettings(backoff_initial=0.5, backoff_max=4.0)

    assert [settings.backoff(attempts) for attempts in (1, 2, 3, 4, 5, 100)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"poll_interval": 0}, {"backoff_initial": 5.0, "backoff_max": 1.0}]
)
def test_bad_relay_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        RelaySettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"since": datetime(2026, 1, 1)},
        {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
        {"types": ("a.b", " ")},
    ],
)
def test_bad_journal_queries_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        JournalQuery(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "Bus", "1bus", "bus-x", "bus;drop", "a" * 64])
def test_schema_names_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_schema(name)


def test_migrations_are_numbered_and_written_for_their_schema() -> None:
    migrations = load_migrations(BUS_MIGRATIONS, "bus_x")

    assert [migration.version for migration in migrations] == list(range(1, len(migrations) + 1))
    assert all("__SCHEMA__" not in migration.sql for migration in migrations)
    assert "CREATE TABLE bus_x.outbox" in migrations[0].sql
