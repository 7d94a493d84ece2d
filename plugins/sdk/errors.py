"""The errors a plugin raises, with CSI's meanings (re-exported from `schemas.errors` so plugins import one place).

- `InvalidArgument`: the request is malformed; retrying cannot help.
- `NotFound`: the volume, snapshot or backup named does not exist.
- `AlreadyExists`: the caller's id is taken by an object made by a *different* request (the same request again
  returns the same result instead).
- `ResourceExhausted`: not enough space or quota.
- `FailedPrecondition`: the object or pool is not in a state that allows it (maintenance, a snapshot with children).
- `Aborted`: another operation holds the object; try later.
- `Unimplemented`: the storage cannot do it; the framework may fall back.
- `DeadlineExceeded`: the call ran past its deadline and was stopped (`plugins.sdk.deadlines`).
- `Transient`: a passing failure (storage busy, connection lost); the only retryable one.
"""

from schemas.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StrataError,
    Transient,
    Unimplemented,
)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "StrataError",
    "Transient",
    "Unimplemented",
]
