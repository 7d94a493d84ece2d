"""The project's errors, with CSI's meanings, and the payload that carries one in a reply event.

The retry meaning of an error is decided where it is raised: `Transient` is the only retryable class.
"""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class StrataError(Exception):
    """Base of every error strata raises on purpose. Permanent unless a subclass says otherwise."""

    code: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def info(self) -> "ErrorInfo":
        """Return the error as a payload that can travel in an event."""
        return ErrorInfo(code=self.code, error_class=type(self).__name__, message=self.message, field=self.field)


class InvalidArgument(StrataError):
    """The request is malformed or a value is out of range; retrying it cannot help."""

    code = "INVALID_ARGUMENT"


class NotFound(StrataError):
    """The object the request names does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(StrataError):
    """An object with this id exists and is incompatible with the request."""

    code = "ALREADY_EXISTS"


class ResourceExhausted(StrataError):
    """Not enough capacity (space, quota) to do it."""

    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(StrataError):
    """The object is not in a state that allows the request (e.g. an illegal state transition)."""

    code = "FAILED_PRECONDITION"


class Aborted(StrataError):
    """Another operation is pending on the same object, or a fencing token is stale."""

    code = "ABORTED"


class Unimplemented(StrataError):
    """The storage does not support the operation; the framework may fall back."""

    code = "UNIMPLEMENTED"


class DeadlineExceeded(StrataError):
    """The call did not finish within its deadline and was given up (its work stopped); not retried on its own: the
    caller decides (a saga probes, then retries or compensates)."""

    code = "DEADLINE_EXCEEDED"


class Transient(StrataError):
    """A passing failure (connection lost, storage busy); the same request may succeed later."""

    code = "TRANSIENT"
    retryable = True


ERROR_CLASSES: dict[str, type[StrataError]] = {
    cls.code: cls
    for cls in (
        StrataError,
        InvalidArgument,
        NotFound,
        AlreadyExists,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        Unimplemented,
        DeadlineExceeded,
        Transient,
    )
}


class ErrorInfo(BaseModel):
    """An error as it travels in a failure event or a dead letter: never a secret, never a stack trace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(description="CSI-style code: INVALID_ARGUMENT, NOT_FOUND, ..., TRANSIENT.")
    error_class: str = Field(description="Name of the error class that was raised.")
    message: str = Field(description="What went wrong, for an operator.")
    field: str | None = Field(default=None, description="The input field at fault, where there is one.")

    @property
    def retryable(self) -> bool:
        return self.code == Transient.code

    def to_exception(self) -> StrataError:
        """Rebuild the error on the receiving side, as the class its code names."""
        return ERROR_CLASSES.get(self.code, StrataError)(self.message, field=self.field)
