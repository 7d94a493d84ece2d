"""The message registry: wire (type, version) to model, and upcasters that lift old versions.

Old journals must still replay, so a model's older versions are kept as upcasters: functions from the JSON of
version N to the JSON of version N+1.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.envelope import Message
from schemas.errors import InvalidArgument

M = TypeVar("M", bound=type[Message])
# JSON objects from the wire are untyped until the model validates them.
JsonObject = dict[str, Any]
Upcaster = Callable[[JsonObject], JsonObject]


class MalformedMessage(InvalidArgument):
    """The body is not a JSON object."""


class UnknownMessageType(InvalidArgument):
    """No model is registered for this (type, version), and no upcaster leads to one."""


class SchemaViolation(InvalidArgument):
    """The body does not match the model of its type."""


class MessageRegistry:
    """Maps wire types and versions to models. One default instance, `registry`, holds every message."""

    def __init__(self) -> None:
        self._models: dict[str, type[Message]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, model: type[Message], type_name: str, version: int) -> None:
        """Register `model` as the current version of `type_name`."""
        if "." not in type_name or type_name != type_name.lower():
            raise ValueError(f"message type {type_name!r} must be a lower-case dotted name")
        existing = self._models.get(type_name)
        if existing is not None and existing is not model and existing.__qualname__ != model.__qualname__:
            raise ValueError(f"message type {type_name!r} is already registered to {existing.__qualname__}")
        model.message_type = type_name
        model.message_version = version
        self._models[type_name] = model

    def add_upcaster(self, type_name: str, from_version: int, upcast: Upcaster) -> None:
        """Register a function that turns the JSON of `from_version` into that of `from_version + 1`."""
        self._upcasters[(type_name, from_version)] = upcast

    def model_for(self, type_name: str) -> type[Message]:
        """Return the current model of a wire type."""
        try:
            return self._models[type_name]
        except KeyError:
            raise UnknownMessageType(f"unknown message type {type_name!r}", field="type") from None

    def decode(self, type_name: str, version: int, body: bytes | str) -> Message:
        """Parse and validate a body, upcasting it first if it is an older version."""
        model = self.model_for(type_name)
        if version == model.message_version:
            try:
                return model.model_validate_json(body)
            except ValidationError as error:
                raise SchemaViolation(_describe(type_name, error), field=_first_field(error)) from None
        if version > model.message_version or version < 1:
            raise UnknownMessageType(
                f"{type_name} version {version} is not known (current is {model.message_version})", field="version"
            )
        try:
            data = json.loads(body)
        except ValueError as error:
            raise MalformedMessage(f"body of {type_name} is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MalformedMessage(f"body of {type_name} is not a JSON object")
        for step in range(version, model.message_version):
            upcast = self._upcasters.get((type_name, step))
            if upcast is None:
                raise UnknownMessageType(f"no upcaster for {type_name} from version {step}", field="version")
            data = upcast(data)
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise SchemaViolation(_describe(type_name, error), field=_first_field(error)) from None

    def __iter__(self) -> Iterator[type[Message]]:
        return iter(sorted(self._models.values(), key=lambda model: model.message_type))

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._models


def _first_field(error: ValidationError) -> str | None:
    errors = error.errors()
    if not errors or not errors[0]["loc"]:
        return None
    return ".".join(str(part) for part in errors[0]["loc"])


def _describe(type_name: str, error: ValidationError) -> str:
    # Only the location and the kind of error: input values may hold secrets and never reach a dead letter.
    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(body)'}: {item['msg']}" for item in error.errors()
    )
    return f"{type_name} does not match its schema: {problems}"


registry = MessageRegistry()


def message(type_name: str, version: int = 1, *, into: MessageRegistry = registry) -> Callable[[M], M]:
    """Class decorator: register a Command or Event under its wire type and version."""

    def register(model: M) -> M:
        into.register(model, type_name, version)
        return model

    return register


def upcaster(type_name: str, from_version: int, *, into: MessageRegistry = registry) -> Callable[[Upcaster], Upcaster]:
    """Function decorator: register an upcaster from `from_version` to the next version of `type_name`."""

    def register(upcast: Upcaster) -> Upcaster:
        into.add_upcaster(type_name, from_version, upcast)
        return upcast

    return register
