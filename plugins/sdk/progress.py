"""Progress reporting for long copies, in the form the chunked backup format also uses."""

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(done_bytes, total_bytes)` while a copy, backup or restore runs; must return quickly."""


def no_progress(done_bytes: int, total_bytes: int) -> None:
    """The callback used when the caller passes none."""


def fraction_to_bytes(progress: ProgressCallback, total_bytes: int) -> Callable[[float], None]:
    """Adapt a tool that reports percent (like `qemu-img convert -p`) to a byte callback."""

    def report(percent: float) -> None:
        progress(min(total_bytes, int(total_bytes * percent / 100)), total_bytes)

    return report
