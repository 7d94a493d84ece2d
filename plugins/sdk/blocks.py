"""Block maps: where a snapshot's (or a volume's) bytes lie, readable in place, and which of them changed.

A primary storage plugin that can tell (`BlockMapProvider`) describes a snapshot as extents of the guest's address
space: each is zeros, or bytes at an offset of one of its files. With a `since` snapshot it also marks the extents
written after that snapshot, which is what a changed-block incremental backup reads (for qcow2 chains: the extents
`qemu-img map` reports in the layers above the `since` snapshot's layer). A backup target (`BlockBackupTarget`)
reads through `BlockReader`, so no byte is copied to a staging file first.
"""

import bisect
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from plugins.sdk.errors import FailedPrecondition


@dataclass(frozen=True, slots=True)
class Extent:
    """A run of the guest's address space with one source.

    Attributes:
        start: Guest offset of its first byte.
        length: Bytes in the run.
        file: The file that holds the bytes; None when the run reads as zeros.
        file_offset: Where in `file` the run's first byte lies.
        changed: True when a layer written after the `since` snapshot holds the run (always True without one).
    """

    start: int
    length: int
    file: str | None = None
    file_offset: int = 0
    changed: bool = True

    @property
    def end(self) -> int:
        """The guest offset just past the run."""
        return self.start + self.length


@dataclass(frozen=True)
class BlockMap:
    """A snapshot's bytes, extent by extent, covering `[0, size_bytes)` in order without gaps.

    Attributes:
        size_bytes: The guest's size.
        extents: The runs, in guest order.
        changes_known: False when the provider could not tell what changed since the `since` snapshot (its layer
            is gone, or there was none): every extent is then marked changed and a backup compares chunk hashes.
        reason: Why changes are not known, for the backup's record.
    """

    size_bytes: int
    extents: tuple[Extent, ...]
    changes_known: bool = True
    reason: str | None = None

    def changed_bytes(self) -> int:
        """Bytes in extents marked changed (what a changed-block backup reads, at most)."""
        return sum(extent.length for extent in self.extents if extent.changed)

    def data_bytes(self) -> int:
        """Bytes held in files (not zeros)."""
        return sum(extent.length for extent in self.extents if extent.file is not None)


class BlockReader:
    """Reads guest ranges of a `BlockMap` from its files (blocking: use it in worker threads, several at once if you
    like, then `close` it)."""

    def __init__(self, blocks: BlockMap) -> None:
        self.blocks = blocks
        self.bytes_read = 0
        self._starts = [extent.start for extent in blocks.extents]
        self._files: dict[str, int] = {}
        self._lock = threading.Lock()

    def _fd(self, path: str) -> int:
        with self._lock:
            if path not in self._files:
                try:
                    self._files[path] = os.open(path, os.O_RDONLY)
                except OSError as error:
                    raise FailedPrecondition(f"cannot read {Path(path).name}: {error.strerror}") from None
            return self._files[path]

    def _first_extent(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._starts, offset) - 1)

    def read(self, offset: int, length: int) -> bytearray:
        """The guest's bytes `[offset, offset + length)`; zeros where the map says so."""
        out = bytearray(length)
        index = self._first_extent(offset)
        extents = self.blocks.extents
        position = offset
        read = 0
        with memoryview(out) as view:
            while position < offset + length and index < len(extents):
                extent = extents[index]
                upto = min(extent.end, offset + length)
                if extent.file is not None:
                    place = view[position - offset : upto - offset]
                    fd = self._fd(extent.file)
                    at = extent.file_offset + position - extent.start
                    while place:
                        got = os.preadv(fd, [place], at)
                        if got == 0:
                            raise FailedPrecondition(f"{Path(extent.file).name} is shorter than its map says")
                        place, at = place[got:], at + got
                    read += upto - position
                position = upto
                if upto == extent.end:
                    index += 1
        with self._lock:
            self.bytes_read += read
        return out

    def all_zero(self, offset: int, length: int) -> bool:
        """True when the map says the range reads as zeros (no file needs reading)."""
        index = self._first_extent(offset)
        extents = self.blocks.extents
        while index < len(extents) and extents[index].start < offset + length:
            if extents[index].file is not None:
                return False
            index += 1
        return True

    def any_changed(self, offset: int, length: int) -> bool:
        """True when any extent overlapping the range is marked changed."""
        index = self._first_extent(offset)
        extents = self.blocks.extents
        while index < len(extents) and extents[index].start < offset + length:
            if extents[index].changed:
                return True
            index += 1
        return False

    def close(self) -> None:
        """Close the files opened for reading."""
        files, self._files = self._files, {}
        for fd in files.values():
            os.close(fd)
