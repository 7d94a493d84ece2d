"""CloudStack's event bus format (schemas.cloudstack) against messages built by CloudStack's rules
(tests.cloudstack_wire), including what a hostile or broken publisher sends."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.cloudstack import (
    MAX_BODY_BYTES,
    ActionAnswer,
    ActionEvent,
    MalformedEvent,
    OtherEvent,
    ResourceStateEvent,
    Status,
    parse_date,
    parse_event,
    render_answer,
)
from tests.cloudstack_wire import action_event, gson, parse, resource_state_event, routing_key

pytestmark = pytest.mark.unit
KEY = routing_key("management-server", "ActionEvent", "VOLUME.CREATE", "Volume", str(uuid.uuid4()))


def test_an_action_event_parses_whatever_the_key_order() -> None:
    volume, pool, zone, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    moment = datetime(2026, 12, 7, 10, 14, 1, tzinfo=timezone(timedelta(hours=1)))
    parsed: list[ActionEvent] = []
    for seed in range(8):
        message = action_event(
            "VOLUME.MIGRATE",
            "Scheduled",
            entity="Volume",
            entity_uuid=volume,
            entities={"StoragePool": pool, "DataCenter": zone},
            description="migrating volume a=b 'x'",
            user=user,
            account=user,
            moment=moment,
        )
        assert message.routing_key == f"management-server.ActionEvent.VOLUME-MIGRATE.Volume.{volume}"
        assert b"\\u003d" in message.body
        assert b"\\u0027" in message.body
        event = parse_event(message.routing_key, gson(json.loads(message.body), shuffle=random.Random(seed)))
        assert isinstance(event, ActionEvent)
        parsed.append(event)
    assert all(each == parsed[0] for each in parsed)  # the same event whatever the order
    event = parsed[0]
    assert event.status is Status.SCHEDULED
    assert event.requested
    assert not event.failed
    assert event.event == "VOLUME.MIGRATE"
    assert event.entity == "Volume"
    assert event.entity_uuid == volume
    assert event.entities == {"StoragePool": pool, "DataCenter": zone}
    assert event.entity_id("StoragePool") == pool
    assert event.entity_id("Volume") == volume
    assert event.description == "migrating volume a=b 'x'"
    assert event.occurred_at == moment
    assert event.project is None


def test_a_java_class_name_is_the_simple_name() -> None:
    volume = uuid.uuid4()
    message = action_event(
        "VOLUME.DELETE", "Started", entity="Volume", entity_uuid=volume, java_class="com.cloud.storage.Volume"
    )
    assert message.routing_key.split(".")[3] == "com-cloud-storage-Volume"
    event = parse_event(message.routing_key, message.body)
    assert isinstance(event, ActionEvent)
    assert event.entity == "Volume"
    assert event.entity_id("Volume") == volume


def test_completed_with_error_while_is_a_failure() -> None:
    snapshot = uuid.uuid4()
    failed = action_event(
        "SNAPSHOT.CREATE",
        "Completed",
        entity="Snapshot",
        entity_uuid=snapshot,
        description="Error while taking snapshot",
    )
    done = action_event(
        "SNAPSHOT.CREATE", "Completed", entity="Snapshot", entity_uuid=snapshot, description="Successfully completed"
    )
    failed_event, done_event = (parse_event(m.routing_key, m.body) for m in (failed, done))
    assert isinstance(failed_event, ActionEvent)
    assert failed_event.failed
    assert not failed_event.requested
    assert isinstance(done_event, ActionEvent)
    assert not done_event.failed


def test_a_resource_state_event_pre_and_post_parse_alike() -> None:
    volume = uuid.uuid4()
    moment = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)
    pre, post = (
        resource_state_event("Volume", volume, "Ready", "Migrating", event="MigrationRequested", moment=moment)
        for _ in range(2)
    )
    first, second = parse_event(pre.routing_key, pre.body), parse_event(post.routing_key, post.body)
    assert isinstance(first, ResourceStateEvent)
    assert first == second
    assert (first.resource, first.resource_id, first.old_state, first.new_state) == (
        "Volume",
        volume,
        "Ready",
        "Migrating",
    )
    assert first.event == "MigrationRequested"


def test_other_categories_are_neither_parsed_nor_refused() -> None:
    key = routing_key("management-server", "AlertEvent", "ALERT.STORAGE", None, None)
    assert key == "management-server.AlertEvent.ALERT-STORAGE.*.*"
    assert parse_event(key, b"not even json") == OtherEvent(category="AlertEvent", event="ALERT-STORAGE")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"\xff\xfe", "body"),
        (b"[1, 2]", "body"),
        (b'{"status": "Scheduled", "status": "Started"}', "status"),
        (b'{"status": 3}', "status"),
        (b'{"status": "Scheduled", "eventDateTime": "2026-12-07 10:00:00 +0000"}', "event"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
    ],
)
def test_broken_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        parse_event(KEY, body)
    assert raised.value.field == field


def _fields(**changes: str) -> bytes:
    base = {
        "status": "Scheduled",
        "event": "VOLUME.CREATE",
        "entity": "Volume",
        "entityuuid": str(uuid.uuid4()),
        "description": "creating volume",
        "eventDateTime": "2026-12-07 10:00:00 +0000",
    }
    return gson({**base, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"entityuuid": "x; DROP TABLE bridge.events"}, "entityuuid"),
        ({"Volume": "'; DELETE FROM storage.volumes; --"}, "Volume"),
        ({"description": "x" * (1024 * 1024)}, "body"),
        ({"description": "x" * 5000}, "description"),
        ({"status": "Finished"}, "status"),
        ({"event": "volume.create; rm -rf"}, "event"),
        ({"eventDateTime": "yesterday"}, "eventDateTime"),
        ({"lower": "key"}, "lower"),
        ({"entity": "<script>"}, "entity"),
    ],
)
def test_hostile_fields_are_refused_by_name(changes: dict[str, str], field: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        parse_event(KEY, _fields(**changes))
    assert raised.value.field == field


def test_an_oversized_body_is_refused_before_parsing() -> None:
    with pytest.raises(MalformedEvent, match=f"over the {MAX_BODY_BYTES}-byte limit"):
        parse_event(KEY, b" " * (MAX_BODY_BYTES + 1))


@pytest.mark.parametrize("key", ["a.b.c.d", "a.b.c.d.e.f", "management-server..VOLUME-CREATE.Volume.x", ""])
def test_routing_keys_have_five_words(key: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        parse_event(key, _fields())
    assert raised.value.field == "routing_key"


def test_an_answer_reads_back_with_cloudstacks_rules() -> None:
    volume, pool, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    moment = datetime(2026, 12, 7, 11, 0, 5, tzinfo=UTC)
    for succeeded, reason in ((True, None), (False, "pool 'fast' is full: need=4G")):
        answer = ActionAnswer(
            event="VOLUME.MIGRATE",
            entity="Volume",
            entity_uuid=volume,
            entities={"StoragePool": pool},
            user=user,
            succeeded=succeeded,
            doing="migrating volume",
            reason=reason,
            occurred_at=moment,
        )
        key, body = render_answer(answer)
        read = parse(key, body)
        assert (read.source, read.category, read.event_type, read.resource, read.resource_uuid) == (
            "strata",
            "ActionEvent",
            "VOLUME-MIGRATE",
            "Volume",
            str(volume),
        )
        assert read.fields["Volume"] == str(volume)
        assert read.fields["StoragePool"] == str(pool)
        assert read.fields["status"] == "Completed"
        assert read.fields["user"] == str(user)
        assert read.moment == moment
        assert read.failed is (not succeeded)
        if reason:
            assert b"\\u003d" in body
            assert b"\\u0027" in body
            assert read.fields["description"] == f"Error while migrating volume: {reason}"
        else:
            assert read.fields["description"] == "Successfully completed migrating volume"
        event = parse_event(key, body)  # the bridge reads its own answers like CloudStack's events
        assert isinstance(event, ActionEvent)
        assert event.failed is (not succeeded)


@pytest.mark.parametrize(
    "text",
    ["2026-12-07 10:14:01 +0100", "2026-12-07 10:14:01 -0530", "2026-1-7 1:4:1 +0000", "2026-12-07 10:14:01 +01:00"],
)
def test_event_dates_read_as_javas_simple_date_format_writes_them(text: str) -> None:
    assert parse_date(text) == datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    assert parse_date(text).utcoffset() == datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-07 10:14:01 +0100",
        "2026-02-30 10:00:00 +0000",
        "2026-12-07 10:14:01",
        "2026-12-07 10:14:01 +2500",
        "2026-12-07 10:14:01 +0100\n",
        "\u0662\u0660\u0662\u0666-12-07 10:14:01 +0100",
    ],
)
def test_other_dates_are_refused_by_field(text: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        parse_date(text)
    assert refused.value.field == "eventDateTime"
