"""Errors particular to the chunked format, each a subclass of the CSI-style class whose meaning it has."""

from schemas.errors import FailedPrecondition, StrataError


class ChunkCorrupted(FailedPrecondition):
    """A stored chunk does not match its SHA-256 name: the backup cannot be restored as it is (never retried)."""


class IncompatibleFormat(FailedPrecondition):
    """A manifest was written in a format version this code does not read."""


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first project error in a task group's failure: the one a caller can act on."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if isinstance(error, StrataError):
            return error
    return group.exceptions[0]
