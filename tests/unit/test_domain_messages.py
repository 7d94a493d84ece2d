"""The storage, snapshot and VM messages: registered, documented, validated, and never echoing pool secrets."""

import inspect
import json
from types import ModuleType
from uuid import uuid4

import pytest

from schemas import Command, Envelope, Event, Message, registry
from schemas import snapshot as snapshot_messages
from schemas import storage as storage_messages
from schemas import vm as vm_messages
from schemas.agent import AgentCommand, AttachPoolToHost
from schemas.errors import ErrorInfo, NotFound
from schemas.redact import REDACTED, redacted
from schemas.registry import SchemaViolation
from schemas.snapshot import RevertVmToSnapshot, VolumeSnapshotPair
from schemas.storage import AddPool, PoolAddFailed
from schemas.vm import PowerState, VmDescribed

pytestmark = pytest.mark.unit

MODULES: list[ModuleType] = [storage_messages, snapshot_messages, vm_messages]
MESSAGES = [
    model
    for module in MODULES
    for _, model in inspect.getmembers(module, inspect.isclass)
    if issubclass(model, Message) and model.__module__ == module.__name__ and model.message_type
]
SECRET_CONFIG = {"server": "10.0.0.5", "username": "admin", "password": "hunter2-very-secret"}


def add_pool_body(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "pool_id": str(uuid4()),
        "name": "fast-1",
        "plugin": "qcow2fs",
        "config": SECRET_CONFIG,
        "scope": "cluster",
        "zone_id": str(uuid4()),
        "cluster_id": "c1",
        "hypervisors": ["kvm"],
        "tags": ["ssd"],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_the_modules_register_their_messages() -> None:
    assert len(MESSAGES) >= 60
    for model in MESSAGES:
        assert model.message_type in registry
        assert registry.model_for(model.message_type) is model


@pytest.mark.parametrize("model", MESSAGES, ids=lambda model: model.message_type)
def test_every_message_is_documented_and_named_by_its_kind(model: type[Message]) -> None:
    assert (model.__doc__ or "").strip()
    assert issubclass(model, Command) != issubclass(model, Event)
    if issubclass(model, Command):
        assert not model.message_type.endswith(("ed", "failed")), "commands are imperative"
    else:
        assert model.message_type.split(".")[-1].endswith(("ed", "failed")), "events are past tense"


@pytest.mark.parametrize("model", [m for m in MESSAGES if issubclass(m, Event)], ids=lambda m: m.message_type)
def test_no_event_carries_a_pool_configuration(model: type[Message]) -> None:
    assert "config" not in model.model_fields


@pytest.mark.parametrize("model", [m for m in MESSAGES if m.__name__.endswith("Failed")], ids=lambda m: m.__name__)
def test_every_failure_event_carries_an_error_info(model: type[Message]) -> None:
    assert model.model_fields["error"].annotation is ErrorInfo


@pytest.mark.parametrize("model", [AddPool, AttachPoolToHost])
def test_pool_configuration_is_write_only_and_out_of_repr(model: type[Message]) -> None:
    assert model.model_json_schema()["properties"]["config"]["writeOnly"] is True
    assert model.model_fields["config"].repr is False


def test_an_added_pool_never_shows_its_secret() -> None:
    command = registry.decode("pool.add", 1, add_pool_body())
    assert isinstance(command, AddPool)
    assert command.config == SECRET_CONFIG
    assert "hunter2" not in repr(command)
    assert "hunter2" not in str(command)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scope": "host", "cluster_id": "c1"}, "host"),
        ({"scope": "cluster", "cluster_id": None}, "cluster_id"),
        ({"scope": "zone", "cluster_id": None, "host": "h1"}, "host"),
        ({"scope": "galaxy"}, "scope"),
        ({"hypervisors": ["KVM!"]}, "hypervisors.0"),
        ({"tags": ["has space"]}, "tags.0"),
        ({"name": ""}, "name"),
        ({"config": "password=hunter2-very-secret"}, "config"),
    ],
)
def test_a_bad_pool_is_refused_naming_the_field_and_never_the_secret(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(SchemaViolation) as refused:
        registry.decode("pool.add", 1, add_pool_body(**overrides))
    assert refused.value.field == field
    assert "hunter2" not in str(refused.value)


def test_a_pool_config_missing_is_refused() -> None:
    body = json.loads(add_pool_body())
    del body["config"]
    with pytest.raises(SchemaViolation) as refused:
        registry.decode("pool.add", 1, json.dumps(body))
    assert refused.value.field == "config"


def test_sizes_are_positive_bytes() -> None:
    body = {"volume_id": str(uuid4()), "name": "data", "size_bytes": 0, "zone_id": str(uuid4())}
    with pytest.raises(SchemaViolation) as refused:
        registry.decode("volume.create", 1, json.dumps(body))
    assert refused.value.field == "size_bytes"


def test_an_agent_command_must_be_routable() -> None:
    assert issubclass(vm_messages.StopVm, AgentCommand)
    with pytest.raises(SchemaViolation, match="needs a host or a cluster_id"):
        registry.decode("vm.stop", 1, json.dumps({"vm_id": str(uuid4())}))
    routed = registry.decode("vm.stop", 1, json.dumps({"vm_id": str(uuid4()), "cluster_id": "c1"}))
    assert isinstance(routed, vm_messages.StopVm)
    assert routed.force is False


def test_a_vm_revert_names_each_volume_once() -> None:
    volume = uuid4()
    pairs = [VolumeSnapshotPair(volume_id=volume, snapshot_id=uuid4()) for _ in range(2)]
    body = {"vm_id": str(uuid4()), "vm_snapshot_id": str(uuid4()), "host": "h1"}
    with pytest.raises(SchemaViolation, match="listed twice"):
        registry.decode(
            "vm.snapshot.revert", 1, json.dumps({**body, "snapshots": [p.model_dump(mode="json") for p in pairs]})
        )
    with pytest.raises(SchemaViolation) as refused:
        registry.decode("vm.snapshot.revert", 1, json.dumps({**body, "snapshots": []}))
    assert refused.value.field == "snapshots"
    ok = RevertVmToSnapshot(vm_id=uuid4(), vm_snapshot_id=uuid4(), host="h1", snapshots=(pairs[0],))
    assert registry.decode("vm.snapshot.revert", 1, ok.model_dump_json()) == ok


def test_failure_events_travel_with_their_error() -> None:
    failed = PoolAddFailed(pool_id=uuid4(), error=NotFound("plugin nope is not installed", field="plugin").info())
    envelope = Envelope.wrap(failed, producer="storage@h1")
    decoded = registry.decode(envelope.type, envelope.version, failed.model_dump_json())
    assert decoded == failed
    assert isinstance(decoded, PoolAddFailed)
    assert isinstance(decoded.error.to_exception(), NotFound)


def test_described_vm_round_trips() -> None:
    described = VmDescribed(vm_id=uuid4(), host="h1", power_state=PowerState.RUNNING)
    assert registry.decode("vm.described", 1, described.model_dump_json()) == described


@pytest.mark.parametrize("type_name", ["pool.add", "agent.pool.attach"])
def test_a_journal_record_masks_the_configuration_while_the_wire_keeps_it(type_name: str) -> None:
    body = json.loads(add_pool_body())
    if type_name == "agent.pool.attach":
        body = {"pool_id": body["pool_id"], "plugin": "qcow2fs", "config": SECRET_CONFIG, "host": "h1"}
    command = registry.decode(type_name, 1, json.dumps(body))
    journaled = json.dumps(redacted(command))
    assert "hunter2" not in journaled
    assert json.loads(journaled)["config"] == dict.fromkeys(SECRET_CONFIG, REDACTED)
    assert registry.decode(type_name, 1, command.model_dump_json()) == command
