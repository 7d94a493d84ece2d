"""The console's change form of a plugin config (services.api.forms.update_form, posted_changes): every field empty
and optional, an enum and a boolean offering "unchanged" first, a secret a password input; what is posted empty
stays out of the change, numbers and booleans come back typed."""

from enum import StrEnum

import pytest
from pydantic import BaseModel, Field, SecretStr

from services.api.forms import posted_changes, update_form

pytestmark = pytest.mark.unit


class Mode(StrEnum):
    FAST = "fast"
    SAFE = "safe"


class Config(BaseModel):
    path: str = Field(description="Where it lives.")
    password: SecretStr = Field(json_schema_extra={"secret": True})
    mode: Mode = Mode.SAFE
    shared: bool = False
    port: int = Field(default=2049, ge=1, le=65535)


SCHEMA = Config.model_json_schema()


def test_every_field_of_a_change_form_starts_empty_and_optional() -> None:
    fields = {each.name: each for each in update_form(SCHEMA)}
    assert {name: (each.kind, each.value, each.required) for name, each in fields.items()} == {
        "path": ("text", "", False),
        "password": ("password", "", False),
        "mode": ("select", "", False),
        "shared": ("select", "", False),
        "port": ("number", "", False),
    }
    assert fields["mode"].options == ["", "fast", "safe"]
    assert fields["shared"].options == ["", "true", "false"]


def test_only_what_was_filled_in_is_changed_typed() -> None:
    fields = update_form(SCHEMA)
    posted = {"config.path": "", "config.password": "", "config.mode": "", "config.shared": "false", "config.port": "7"}
    assert posted_changes(posted, fields, SCHEMA) == {"shared": False, "port": 7}
    assert posted_changes({"config.password": "new", "config.mode": "fast"}, fields, SCHEMA) == {
        "password": "new",
        "mode": "fast",
    }
    assert posted_changes({}, fields, SCHEMA) == {}
