"""Redaction of secret fields, for everything that keeps or shows a message (journal, logs, CLI).

A field is secret when its schema says `writeOnly` (pydantic `json_schema_extra={"writeOnly": True}`) or when it is
a `SecretStr`/`SecretBytes`. The wire still carries the value to the one service that needs it; the journal and
every display carry `REDACTED` instead, at any depth of nested models.
"""

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, SecretBytes, SecretStr

REDACTED = "**********"

# JSON values are untyped by nature.
JsonObject = dict[str, Any]


def _is_secret(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields[name]
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("writeOnly") is True:
        return True
    return info.annotation in (SecretStr, SecretBytes, SecretStr | None, SecretBytes | None)


def _redact_into(value: BaseModel, dumped: JsonObject) -> JsonObject:
    model = type(value)
    for name in model.model_fields:
        field = getattr(value, name)
        if field is None or name not in dumped:
            continue
        if _is_secret(model, name):
            # A secret mapping (a plugin's configuration) keeps its keys, so a reader still sees what was set.
            dumped[name] = dict.fromkeys(dumped[name], REDACTED) if isinstance(dumped[name], dict) else REDACTED
        elif isinstance(field, BaseModel):
            _redact_into(field, dumped[name])
        elif isinstance(field, list | tuple):
            for item, item_dumped in zip(field, dumped[name], strict=True):
                if isinstance(item, BaseModel):
                    _redact_into(item, item_dumped)
    return dumped


def redacted(value: BaseModel) -> JsonObject:
    """Return `value` as a JSON object with every secret field (at any depth) replaced by `REDACTED`."""
    return _redact_into(value, value.model_dump(mode="json"))


@cache
def needs_redaction(model: type[BaseModel]) -> bool:
    """True if `model` has a secret field at any depth of nested models (most messages have none)."""
    for name, info in model.model_fields.items():
        if _is_secret(model, name):
            return True
        for candidate in (info.annotation, *get_args(info.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and needs_redaction(candidate):
                return True
    return False
