"""Envelope <-> WireMessage, and the names and arguments of the topology."""

from dataclasses import replace
from uuid import uuid4

import pytest

from bus.codec import decode, encode, exchange_for
from bus.ports import QueueKind
from bus.topology import Topology, delay_queue_arguments, service_queue_arguments, topic_matches
from schemas import Envelope
from schemas.errors import InvalidArgument
from schemas.registry import MalformedMessage, SchemaViolation, UnknownMessageType
from tests.bus_fixtures import Ping, Pinged, bus_test_messages

pytestmark = pytest.mark.unit


def test_an_envelope_survives_the_wire_with_every_field() -> None:
    cause = Envelope.wrap(Ping(n=1), saga_id=uuid4(), step=3, fencing_token=7)
    envelope = Envelope.wrap(Pinged(n=1), cause=cause, producer="storage@host1")
    wire = encode(envelope)
    assert wire.type == "bustest.pinged"
    assert wire.body == b'{"n":1}'
    assert wire.headers["version"] == 1
    assert decode(wire, bus_test_messages) == envelope


def test_commands_and_events_go_to_their_exchanges() -> None:
    assert exchange_for(Envelope.wrap(Ping(n=1))) == "commands"
    assert exchange_for(Envelope.wrap(Pinged(n=1))) == "events"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"body": b"\xff\xfe not json"}, MalformedMessage),
        ({"body": b"[1, 2]"}, SchemaViolation),
        ({"body": b'{"n": "many"}'}, SchemaViolation),
        ({"body": b'{"n": 1, "extra": true}'}, SchemaViolation),
        ({"type": ""}, MalformedMessage),
        ({"type": "bustest.unknown"}, UnknownMessageType),
        ({"message_id": "not-a-uuid"}, MalformedMessage),
        ({"headers": {"version": "1"}}, MalformedMessage),
        ({"headers": {"version": 1, "occurred_at": "yesterday"}}, MalformedMessage),
        ({"headers": {"version": 1, "occurred_at": "2026-01-01T00:00:00+00:00", "step": "two"}}, MalformedMessage),
    ],
)
def test_a_bad_message_raises_the_error_that_names_its_fault(change: dict[str, object], error: type[Exception]) -> None:
    wire = replace(encode(Envelope.wrap(Ping(n=1))), **change)  # type: ignore[arg-type]
    with pytest.raises(error):
        decode(wire, bus_test_messages)


def test_a_violation_never_echoes_the_input() -> None:
    wire = replace(encode(Envelope.wrap(Ping(n=1))), body=b'{"n": -5, "text": "s3cr3t", "password": "s3cr3t"}')
    with pytest.raises(SchemaViolation) as raised:
        decode(wire, bus_test_messages)
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("volume.create", "volume.create", True),
        ("volume.*", "volume.create", True),
        ("volume.*", "volume.create.now", False),
        ("volume.#", "volume", True),
        ("volume.#", "volume.a.b", True),
        ("#", "anything.at.all", True),
        ("*.created", "volume.created", True),
        ("*.created", "volume.create", False),
        ("#.created", "a.b.created", True),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_names_live_under_the_namespace_and_reserved_names_are_refused() -> None:
    topology = Topology("strata")
    assert topology.exchange("commands") == "strata.commands"
    assert topology.queue("storage") == "strata.storage"
    assert topology.delay_queue(2) == "strata.retry.2"
    assert topology.dead_queue == "strata.dead"
    for bad in ("dead", "retry.0", "Storage", "a b", ""):
        with pytest.raises(InvalidArgument):
            topology.queue(bad)
    with pytest.raises(InvalidArgument):
        topology.exchange("amq.direct")
    with pytest.raises(InvalidArgument):
        Topology("Bad Namespace")


def test_queue_arguments_make_poison_messages_dead_letters() -> None:
    quorum = service_queue_arguments(QueueKind.QUORUM, dead_exchange="ns.dead", delivery_limit=20)
    assert quorum["x-queue-type"] == "quorum"
    assert quorum["x-delivery-limit"] == 20
    assert quorum["x-dead-letter-strategy"] == "at-least-once"
    assert quorum["x-overflow"] == "reject-publish"
    classic = service_queue_arguments(QueueKind.CLASSIC, dead_exchange="ns.dead", delivery_limit=20)
    assert classic == {"x-queue-type": "classic", "x-dead-letter-exchange": "ns.dead"}
    delay = delay_queue_arguments(0.05)
    assert delay["x-message-ttl"] == 50
    assert delay["x-dead-letter-exchange"] == ""
