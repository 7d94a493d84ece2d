"""Saga-level messages: the generic step replies a participant sends, and what a saga says when it ends.

A participant answers a saga's command with any event wrapped with the command as its cause (so that the reply
carries the saga id and step), or with these generic replies when it has no domain event of its own.
"""

from typing import Any
from uuid import UUID

from pydantic import Field

from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message

# A step's result is whatever JSON object the participant returns; the saga code reads it.
JsonObject = dict[str, Any]


@message("saga.step.succeeded")
class StepSucceeded(Event):
    """A participant did what a saga step asked (or a probe found it done)."""

    result: JsonObject = Field(default_factory=dict, description="What the participant returns to the saga.")
    skipped: bool = Field(default=False, description="True when an operator skipped the step instead.")


@message("saga.step.failed")
class StepFailed(Event):
    """A participant could not do what a saga step asked; `error.code` says whether a retry may help."""

    error: ErrorInfo = Field(description="Why, as a CSI-style error (TRANSIENT is the only retryable code).")


@message("saga.start")
class StartSaga(Command):
    """Start a saga by name with its input message (for operators and tests; services send the input itself)."""

    name: str = Field(min_length=1, description="The saga's registered name, e.g. `vm.revert_to_snapshot`.")
    version: int | None = Field(default=None, ge=1, description="Pinned version; the newest registered if None.")
    input_type: str = Field(min_length=1, description="Wire type of the input command.")
    input_version: int = Field(default=1, ge=1, description="Schema version of the input command.")
    input: JsonObject = Field(description="The input command's payload.")


@message("saga.ended")
class SagaEnded(Event):
    """A saga reached an end state (COMPLETED, COMPENSATED, FAILED) or needs an operator (STUCK)."""

    saga_id: UUID = Field(description="The saga instance.")
    name: str = Field(description="The saga's registered name.")
    status: str = Field(description="COMPLETED, COMPENSATED, FAILED or STUCK.")
    reason: str | None = Field(default=None, description="Why it did not complete, for an operator.")
