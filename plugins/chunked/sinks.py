"""Where a restore writes, from worker threads: a file or a device at the guest's offsets, or the places a block map
of a volume's fresh content gives (a primary plugin's `ContentWriter`: the bytes land in the volume's own file, with
no staging file and no second copy)."""

import bisect
import os
import stat
from typing import Protocol

from plugins.sdk.blocks import BlockMap
from schemas.errors import FailedPrecondition

_ZEROS = bytes(1024 * 1024)


class Sink(Protocol):
    """Takes a restore's bytes at guest offsets (blocking; safe to call from several threads at once)."""

    def write(self, offset: int, data: memoryview) -> None:
        """Put `data` at guest offset `offset`."""
        ...

    def hole(self, offset: int, length: int) -> None:
        """Make `[offset, offset + length)` read as zeros."""
        ...


def write_fully(fd: int, data: memoryview, offset: int) -> None:
    """`pwrite` all of `data` at `offset` (a short write goes on where it stopped)."""
    rest = data
    while rest:
        rest = rest[os.pwrite(fd, rest, offset + len(data) - len(rest)) :]


class FileSink:
    """A file (fresh: truncated, so a hole is left as one) or a block device (which keeps old bytes: a hole is
    written as zeros), at the guest's own offsets."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.keeps_old_bytes = not stat.S_ISREG(os.fstat(fd).st_mode)

    def write(self, offset: int, data: memoryview) -> None:
        """`pwrite` at the same offset."""
        write_fully(self.fd, data, offset)

    def hole(self, offset: int, length: int) -> None:
        """Nothing on a fresh file; zeros on a device."""
        if not self.keeps_old_bytes:
            return
        for start in range(offset, offset + length, len(_ZEROS)):
            write_fully(self.fd, memoryview(_ZEROS)[: min(len(_ZEROS), offset + length - start)], start)


class PlacedSink:
    """The places of a fresh content that reads as zeros until written (a `ContentWriter`'s map): each guest range
    is written at its extent's offset in the extent's file; holes are left alone. Open it in a worker thread, and
    `close` it when done."""

    def __init__(self, blocks: BlockMap) -> None:
        self.blocks = blocks
        self._starts = [extent.start for extent in blocks.extents]
        self._fds: dict[str, int] = {}
        try:
            for extent in blocks.extents:
                if extent.file is not None and extent.file not in self._fds:
                    self._fds[extent.file] = os.open(extent.file, os.O_WRONLY)
        except BaseException:
            self.close()
            raise

    def write(self, offset: int, data: memoryview) -> None:
        """Split `data` over the extents it covers, each part written at its place."""
        extents = self.blocks.extents
        index = bisect.bisect_right(self._starts, offset) - 1
        position = offset
        while position < offset + len(data):
            if index < 0 or index >= len(extents):
                raise FailedPrecondition(f"the content's map ends before guest offset {position}")
            extent = extents[index]
            if extent.file is None:
                raise FailedPrecondition(f"the content's map has no place for the bytes at guest offset {position}")
            upto = min(extent.end, offset + len(data))
            part = data[position - offset : upto - offset]
            write_fully(self._fds[extent.file], part, extent.file_offset + position - extent.start)
            position = upto
            index += 1

    def hole(self, offset: int, length: int) -> None:
        """Nothing: a fresh content reads as zeros where nothing was written."""

    def close(self) -> None:
        """Close the files opened for writing."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
