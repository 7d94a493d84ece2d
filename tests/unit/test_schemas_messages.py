"""The message model: envelope lineage, the registry, upcasting, and errors that name the field."""

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import Field, ValidationError

from schemas import Command, Envelope, Event, MessageRegistry, message, upcaster
from schemas.asyncapi import asyncapi_document
from schemas.ids import uuid7, uuid7_time_ms
from schemas.registry import MalformedMessage, SchemaViolation, UnknownMessageType

pytestmark = pytest.mark.unit

local = MessageRegistry()


@message("sample.volume.create", version=2, into=local)
class CreateSampleVolume(Command):
    """Create a volume (test message)."""

    volume_id: str = Field(description="The caller's id for the volume.")
    size_bytes: int = Field(gt=0, description="Virtual size.")


@message("sample.volume.created", into=local)
class SampleVolumeCreated(Event):
    """A volume was created (test message)."""

    volume_id: str


@upcaster("sample.volume.create", from_version=1, into=local)
def _size_in_bytes(data: dict[str, object]) -> dict[str, object]:
    gib = data.pop("size_gib")
    assert isinstance(gib, int)
    return {**data, "size_bytes": gib * 1024**3}


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids)
    assert all(value.version == 7 for value in ids)
    assert len(set(ids)) == len(ids)
    assert uuid7_time_ms(ids[-1]) >= uuid7_time_ms(ids[0])


def test_envelope_inherits_lineage_from_its_cause() -> None:
    command = Envelope.wrap(
        CreateSampleVolume(volume_id="v1", size_bytes=1), producer="api@h1", saga_id=uuid7(), step=3, fencing_token=7
    )
    event = Envelope.wrap(SampleVolumeCreated(volume_id="v1"), cause=command, producer="storage@h2")
    assert event.correlation_id == command.correlation_id == command.message_id
    assert event.causation_id == command.message_id
    assert (event.saga_id, event.step, event.fencing_token) == (command.saga_id, 3, 7)
    assert (event.type, event.version) == ("sample.volume.created", 1)


def test_messages_are_frozen_and_refuse_unknown_fields() -> None:
    created = SampleVolumeCreated(volume_id="v1")
    with pytest.raises(ValidationError):
        created.volume_id = "v2"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SampleVolumeCreated(volume_id="v1", colour="red")  # type: ignore[call-arg]


def test_unregistered_payload_cannot_be_wrapped() -> None:
    class Unregistered(Event):
        volume_id: str

    with pytest.raises(TypeError, match="not a registered message"):
        Envelope.wrap(Unregistered(volume_id="v1"))


def test_registry_decodes_current_and_upcasts_old_versions() -> None:
    current = local.decode("sample.volume.create", 2, b'{"volume_id": "a", "size_bytes": 5}')
    assert current == CreateSampleVolume(volume_id="a", size_bytes=5)
    old = local.decode("sample.volume.create", 1, b'{"volume_id": "a", "size_gib": 2}')
    assert old == CreateSampleVolume(volume_id="a", size_bytes=2 * 1024**3)


@pytest.mark.parametrize(
    ("type_name", "version", "body", "error", "field"),
    [
        ("sample.volume.create", 2, b"{not json", SchemaViolation, None),
        ("sample.volume.create", 1, b"[1, 2]", MalformedMessage, None),
        ("sample.nothing", 1, b"{}", UnknownMessageType, "type"),
        ("sample.volume.create", 3, b"{}", UnknownMessageType, "version"),
        ("sample.volume.create", 2, b'{"volume_id": "a", "size_bytes": -1}', SchemaViolation, "size_bytes"),
        ("sample.volume.create", 2, b'{"volume_id": "a", "size_bytes": 1, "x": 1}', SchemaViolation, "x"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    type_name: str, version: int, body: bytes, error: type[Exception], field: str | None
) -> None:
    with pytest.raises(error) as raised:
        local.decode(type_name, version, body)
    assert getattr(raised.value, "field", None) == field


def test_schema_violation_never_echoes_input_values() -> None:
    with pytest.raises(SchemaViolation) as raised:
        local.decode("sample.volume.create", 2, b'{"volume_id": "a", "size_bytes": "hunter2-secret"}')
    assert "hunter2" not in str(raised.value)


def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    schema_path = Path(__file__).resolve().parents[2] / ".venv/share/asyncapi/3.0.0.json"
    assert schema_path.exists(), "run scripts/setup: it fetches the AsyncAPI 3.0 schema"
    schema = json.loads(schema_path.read_text())
    document = asyncapi_document(namespace="strata", messages=local)
    jsonschema.validate(document, schema)
    message_doc = document["components"]["messages"]["sample_volume_create_v2"]
    assert message_doc["payload"] == {"$ref": "#/components/schemas/CreateSampleVolume"}
    size = document["components"]["schemas"]["CreateSampleVolume"]["properties"]["size_bytes"]
    assert size["description"] == "Virtual size."
    assert document["channels"]["sample_volume_create_v2"]["bindings"]["amqp"]["exchange"]["name"] == "strata.commands"
