"""Named fault points: where a plugin can be crashed on purpose, so tests prove that a second call reconciles.

A plugin marks the risky gaps of an operation (between copying data and switching a chain, say):

    await faults.point("qcow2fs.coalesce.after_commit")

Unarmed, a point costs a dictionary lookup. The conformance kit (or a test) arms it:

    with faults.armed("qcow2fs.coalesce.after_commit"):
        with pytest.raises(faults.InjectedCrash):
            await driver.coalesce(...)

`InjectedCrash` derives from `BaseException` so that a plugin's `except Exception` clean-up does not run, just as
it would not when the process dies. Plugins list their points in `Plugin.fault_points` so the kit can find them.
"""

from collections.abc import Iterator
from contextlib import contextmanager


class InjectedCrash(BaseException):  # a crash, not an error a caller handles
    """Raised at an armed fault point: stands for the process dying there."""

    def __init__(self, point: str) -> None:
        super().__init__(f"injected crash at fault point {point!r}")
        self.point = point


_armed: dict[str, int] = {}
"""Armed point -> how many more times it passes before it crashes (0: the next time)."""
_again: dict[str, int] = {}
"""Armed point -> how many more crashes after the next one (a failure that a retry does not cure)."""
_hits: dict[str, int] = {}


async def point(name: str) -> None:
    """Crash here if the point is armed; otherwise do nothing."""
    _hits[name] = _hits.get(name, 0) + 1
    remaining = _armed.get(name)
    if remaining is None:
        return
    if remaining > 0:
        _armed[name] = remaining - 1
        return
    del _armed[name]
    if _again.get(name, 0) > 0:
        _again[name] -= 1
        _armed[name] = 0
    raise InjectedCrash(name)


def arm(name: str, *, skip: int = 0, times: int = 1) -> None:
    """Make the point crash `times` times in a row (once by default), after letting `skip` passes through."""
    _armed[name] = skip
    _again[name] = times - 1


def disarm(name: str | None = None) -> None:
    """Disarm one point, or all of them."""
    if name is None:
        _armed.clear()
        _again.clear()
    else:
        _armed.pop(name, None)
        _again.pop(name, None)


@contextmanager
def armed(name: str, *, skip: int = 0) -> Iterator[None]:
    """Arm the point for the duration of the block; it is disarmed on the way out whether it fired or not."""
    arm(name, skip=skip)
    try:
        yield
    finally:
        disarm(name)


def hits(name: str) -> int:
    """How many times the point was reached in this process (to check that a test really went through it)."""
    return _hits.get(name, 0)
