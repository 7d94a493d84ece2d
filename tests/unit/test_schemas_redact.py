"""Secrets never reach what keeps or shows a message: the redacted form hides them at any depth."""

import json
from uuid import uuid4

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas import registry
from schemas.redact import REDACTED, needs_redaction, redacted, redacted_body
from schemas.storage import AddPool, PoolScope

pytestmark = pytest.mark.unit


class Credentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: str
    password: SecretStr


class Target(BaseModel):
    model_config = ConfigDict(frozen=True)

    server: str
    config: dict[str, str] = Field(json_schema_extra={"writeOnly": True})
    login: Credentials
    replicas: list[Credentials] = Field(default_factory=list)
    token: SecretStr | None = None


def test_secret_fields_are_redacted_at_any_depth() -> None:
    target = Target(
        server="10.0.0.5",
        config={"password": "hunter2"},
        login=Credentials(user="admin", password=SecretStr("s3cret")),
        replicas=[Credentials(user="r", password=SecretStr("r3plica"))],
    )
    data = redacted(target)
    text = json.dumps(data)
    for secret in ("hunter2", "s3cret", "r3plica"):
        assert secret not in text
    assert data["config"] == {"password": REDACTED}
    assert data["login"] == {"user": "admin", "password": REDACTED}
    assert data["replicas"][0]["password"] == REDACTED
    assert data["token"] is None
    assert data["server"] == "10.0.0.5"


def test_only_models_with_secrets_need_redaction() -> None:
    class Plain(BaseModel):
        server: str
        replicas: list[str]

    class Nested(BaseModel):
        logins: list[Credentials]

    assert needs_redaction(Target)
    assert needs_redaction(Credentials)
    assert needs_redaction(Nested)
    assert not needs_redaction(Plain)


POOL_PASSWORD = "pool-Pa55-hunter2"


def add_pool_body(**changes: object) -> bytes:
    command = AddPool(
        pool_id=uuid4(),
        name="nfs1",
        plugin="nfs",
        config={"server": "10.0.0.5", "password": POOL_PASSWORD, "url": f"nfs://admin:{POOL_PASSWORD}@filer/x"},
        scope=PoolScope.ZONE,
        zone_id=uuid4(),
    )
    data = json.loads(command.model_dump_json())
    data.update(changes)
    return json.dumps(data).encode()


def test_a_body_of_a_known_type_is_masked_by_its_schema() -> None:
    shown = redacted_body("pool.add", 1, add_pool_body(), registry)
    assert POOL_PASSWORD not in json.dumps(shown)
    assert shown["name"] == "nfs1"


@pytest.mark.parametrize(
    ("type_name", "body"),
    [
        ("pool.add", add_pool_body(scope="nowhere")),  # known type, body that does not validate
        ("vendor.unknown", add_pool_body()),  # a type this process does not know
        ("pool.add", f"not json: amqp://u:{POOL_PASSWORD}@broker/".encode()),
    ],
)
def test_a_body_without_a_valid_schema_is_masked_by_name(type_name: str, body: bytes) -> None:
    shown = redacted_body(type_name, 1, body, registry)
    assert POOL_PASSWORD not in json.dumps(shown)
