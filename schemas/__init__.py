"""Typed messages of strata: the envelope, commands and events, errors and the message registry.

This package imports pydantic only; every other package builds on it.
"""

from schemas.envelope import Command, Envelope, Event, Message
from schemas.errors import (
    Aborted,
    AlreadyExists,
    ErrorInfo,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StrataError,
    Transient,
    Unimplemented,
)
from schemas.ids import uuid7
from schemas.registry import MessageRegistry, message, registry, upcaster

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Command",
    "Envelope",
    "ErrorInfo",
    "Event",
    "FailedPrecondition",
    "InvalidArgument",
    "Message",
    "MessageRegistry",
    "NotFound",
    "ResourceExhausted",
    "StrataError",
    "Transient",
    "Unimplemented",
    "message",
    "registry",
    "upcaster",
    "uuid7",
]
