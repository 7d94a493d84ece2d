"""Secrets never reach what keeps or shows a message: the redacted form hides them at any depth."""

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.redact import REDACTED, needs_redaction, redacted

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
