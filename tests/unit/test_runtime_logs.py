"""Logging: JSON lines, the handled message's ids bound through contextvars, and secrets never written."""

import asyncio
import io
import json
from uuid import uuid4

import pytest
import structlog

from schemas import Envelope
from schemas.redact import REDACTED, is_secret_key, mask_url_passwords, redact
from schemas.sagas import StepSucceeded
from services.runtime.logs import bound_message, configure_logging

pytestmark = pytest.mark.unit


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(autouse=True)
def restore_structlog() -> object:
    yield None
    structlog.reset_defaults()


def test_lines_are_json_with_service_level_and_time(stream: io.StringIO) -> None:
    log = configure_logging("storage", stream=stream)
    log.info("pool added", pool_id="p1")
    (line,) = lines(stream)
    assert line["event"] == "pool added"
    assert (line["service"], line["level"], line["pool_id"]) == ("storage", "info", "p1")
    assert str(line["timestamp"]).endswith("Z")


def test_the_level_filters(stream: io.StringIO) -> None:
    log = configure_logging("storage", level="WARNING", stream=stream)
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_the_handled_messages_ids_are_on_every_line_inside_the_block(stream: io.StringIO) -> None:
    log = configure_logging("snapshot", stream=stream)
    saga_id = uuid4()
    envelope = Envelope.wrap(StepSucceeded(), saga_id=saga_id, step=3)
    with bound_message(envelope):
        log.info("handling")
        structlog.get_logger("elsewhere").info("deeper in the call")
    log.info("after")
    inside, deeper, after = lines(stream)
    for line in (inside, deeper):
        assert line["message_id"] == str(envelope.message_id)
        assert line["correlation_id"] == str(envelope.correlation_id)
        assert (line["saga_id"], line["step"], line["message_type"]) == (str(saga_id), 3, "saga.step.succeeded")
    assert "message_id" not in after


async def test_ids_stay_with_their_task(stream: io.StringIO) -> None:
    log = configure_logging("storage", stream=stream)
    first, second = (Envelope.wrap(StepSucceeded()) for _ in range(2))
    both_bound = asyncio.Barrier(2)

    async def handle(envelope: Envelope) -> None:
        with bound_message(envelope):
            await both_bound.wait()
            log.info("handled", expected=str(envelope.message_id))

    await asyncio.gather(handle(first), handle(second))
    assert all(line["message_id"] == line["expected"] for line in lines(stream))


def test_secrets_are_redacted_at_any_depth(stream: io.StringIO) -> None:
    log = configure_logging("storage", stream=stream)
    log.info(
        "pool added",
        password="hunter2",
        config={"server": "10.0.0.5", "password": "hunter2"},
        request={"auth": {"token": "hunter2"}, "items": [{"secret_key": "hunter2", "size": 5}]},
        url="amqp://guest:hunter2@broker:5672/",
        fencing_token=7,
    )
    (line,) = lines(stream)
    assert "hunter2" not in json.dumps(line)
    assert line["password"] == REDACTED
    assert line["config"] == REDACTED
    assert line["request"] == {"auth": REDACTED, "items": [{"secret_key": REDACTED, "size": 5}]}
    assert line["url"] == f"amqp://guest:{REDACTED}@broker:5672/"
    assert line["fencing_token"] == 7


def test_a_secret_in_the_message_text_or_an_exception_is_masked(stream: io.StringIO) -> None:
    log = configure_logging("storage", stream=stream)
    try:
        raise ConnectionError("cannot reach postgresql://strata:hunter2@db/strata")
    except ConnectionError:
        log.exception("connecting to postgresql://strata:hunter2@db/strata failed")
    (line,) = lines(stream)
    assert "hunter2" not in json.dumps(line)
    assert "ConnectionError" in str(line["exception"])


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_passwd", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("access_key", True),
        ("api-key", True),
        ("Authorization", True),
        ("session_id", True),
        ("config", True),
        ("fencing_token", False),
        ("routing_key", False),
        ("pool_id", False),
        ("config_schema", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_url_masking_keeps_urls_without_a_password() -> None:
    assert mask_url_passwords("postgresql://postgres@127.0.0.1/db") == "postgresql://postgres@127.0.0.1/db"
    assert (
        mask_url_passwords("s3://key:sec/ret@host and amqp://u:p@h")
        == f"s3://key:{REDACTED}@host and amqp://u:{REDACTED}@h"
    )


def test_redact_leaves_other_values_alone() -> None:
    assert redact({"size": 5, "names": ("a", "b"), "nested": {"ok": None}}) == {
        "size": 5,
        "names": ["a", "b"],
        "nested": {"ok": None},
    }
