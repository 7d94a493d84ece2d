"""The one redaction path for everything that keeps or shows a message or a value: journal, logs, CLI (and API).

By schema: a field is secret when its schema says `writeOnly` (pydantic `json_schema_extra={"writeOnly": True}`) or
when it is a `SecretStr`/`SecretBytes`. The wire still carries the value to the one service that needs it; the journal
and every display carry `REDACTED` instead, at any depth of nested models (`redacted`, `redacted_body`).

By name, where no schema is known (a log line's keywords, a body that does not validate, headers): any key that looks
like a secret has its value replaced at any depth, and a URL's password is masked in any string (`redact`).
"""

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from schemas.errors import StrataError

if TYPE_CHECKING:
    from schemas.registry import MessageRegistry

REDACTED = "**********"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|private[_-]?key|access[_-]?key|api[_-]?key|auth|cookie|"
    r"session[_-]?id|signature|^config$",
    re.IGNORECASE,
)
# Keys that look like secrets by name but are not: a fencing token is a public counter.
_NOT_SECRET = frozenset({"fencing_token"})
# A password may hold an unescaped '/' (S3 secret keys do): better to mask a port and path by mistake than leak.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]+)@", re.I)
_MAX_DEPTH = 8

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


def is_secret_key(key: str) -> bool:
    """Tell whether a field called `key` holds a secret (a password, a token, a plugin's config)."""
    return key not in _NOT_SECRET and _SECRET_KEY.search(key) is not None


def mask_url_passwords(text: str) -> str:
    """Replace the password of every `scheme://user:password@` in `text`."""
    return _URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:{REDACTED}@", text)


# Values without a schema are arbitrary by nature: a log call's keywords, a JSON body nobody could validate.
def redact(value: Any, depth: int = 0) -> Any:
    """Return `value` with secret-looking keys' values replaced and URL passwords masked, at any depth."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_key(key) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        return mask_url_passwords(value)
    return value


def redacted_body(type_name: str, version: int | None, body: bytes | str, messages: "MessageRegistry") -> Any:
    """A message body as JSON for a display, its secrets masked: by its schema when the body is a valid message of a
    known type, and by name (`redact`, with URL passwords) in any case, so that a secret either way is masked. A body
    that is not JSON comes back as text with its URL passwords masked.
    """
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return mask_url_passwords(text)
    if type_name in messages:
        try:
            message = messages.decode(type_name, version or messages.model_for(type_name).message_version, body)
        except (StrataError, ValidationError, ValueError):  # not a valid message of its type: masked by name only
            return redact(data)
        return redact(redacted(message))
    return redact(data)
