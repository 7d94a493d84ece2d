"""Where a restore writes, from worker threads: a file or a device at the guest's offsets, or the places a block map
of a volume's fresh content gives (a primary plugin's `ContentWriter`: the bytes land in the volume's own file, with
no staging file and no second copy)."""

import bisect
import errno
import os
import stat
from collections.abc import Sequence
from typing import Protocol

from plugins.sdk.blocks import BlockMap
from schemas.errors import FailedPrecondition

_ZEROS = bytes(1024 * 1024)


class Sink(Protocol):
    """Takes a restore's bytes at guest offsets (blocking; safe to call from several threads at once)."""

    def write(self, offset: int, data: memoryview, *, aligned: bool = False) -> None:
        """Put `data` at guest offset `offset`; `aligned` says its buffer starts on a page (a window of the
        restore's own), so that it may go to the disk directly."""
        ...

    def hole(self, offset: int, length: int) -> None:
        """Make `[offset, offset + length)` read as zeros."""
        ...


_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024


def append_all(fd: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
    """Write every part at the file's position, in order, never joined: `writev` (at most IOV_MAX parts a call),
    again from where a short write stopped."""
    views = [memoryview(part).cast("B") for part in parts]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= views[0].nbytes:
            written -= views.pop(0).nbytes
        if views and written:
            views[0] = views[0][written:]


def write_fully(fd: int, data: memoryview, offset: int) -> None:
    """`pwrite` all of `data` at `offset` (a short write goes on where it stopped)."""
    rest = data
    while rest:
        rest = rest[os.pwrite(fd, rest, offset + len(data) - len(rest)) :]


DIRECT_ALIGNMENT = 4096
"""Offsets, lengths and buffers of direct writes are multiples of this (a page; every disk's logical block)."""


def open_direct(path: str) -> int | None:
    """A second descriptor of a regular file for direct writes (`O_DIRECT`), or None where the filesystem has none
    (tmpfs) or the platform lacks it."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:
        return None


class _Writer:
    """A file written through the page cache, and directly where a run allows: a page-aligned run from a
    page-aligned buffer goes to the disk without a copy into the page cache and without waiting behind other dirty
    pages (writing a GiB that way took a third of the time on this project's machines), the rest buffered. Direct
    writes are no more durable than buffered ones: the file's owner still fsyncs it."""

    def __init__(self, fd: int, direct: int | None) -> None:
        self.fd = fd
        self.direct = direct
        self.direct_works = direct is not None

    def write(self, offset: int, data: memoryview, aligned: bool) -> None:
        if (
            aligned
            and self.direct_works
            and self.direct is not None
            and offset % DIRECT_ALIGNMENT == 0
            and len(data) % DIRECT_ALIGNMENT == 0
        ):
            try:
                write_fully(self.direct, data, offset)
                return
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self.direct_works = False  # the filesystem wants another alignment: buffered from now on
        write_fully(self.fd, data, offset)

    def close_direct(self) -> None:
        if self.direct is not None:
            os.close(self.direct)
            self.direct = None


class FileSink:
    """A file (fresh: truncated, so a hole is left as one) or a block device (which keeps old bytes: a hole is
    written as zeros), at the guest's own offsets; `direct` is a second descriptor of the file for direct writes
    (`open_direct`), which the sink closes."""

    def __init__(self, fd: int, direct: int | None = None) -> None:
        self.fd = fd
        self.keeps_old_bytes = not stat.S_ISREG(os.fstat(fd).st_mode)
        self._writer = _Writer(fd, direct)

    def write(self, offset: int, data: memoryview, *, aligned: bool = False) -> None:
        """`pwrite` at the same offset."""
        self._writer.write(offset, data, aligned)

    def hole(self, offset: int, length: int) -> None:
        """Nothing on a fresh file; zeros on a device."""
        if not self.keeps_old_bytes:
            return
        for start in range(offset, offset + length, len(_ZEROS)):
            write_fully(self.fd, memoryview(_ZEROS)[: min(len(_ZEROS), offset + length - start)], start)

    def close(self) -> None:
        """Close the direct descriptor (the caller owns `fd`)."""
        self._writer.close_direct()


class PlacedSink:
    """The places of a fresh content that reads as zeros until written (a `ContentWriter`'s map): each guest range
    is written at its extent's offset in the extent's file; holes are left alone. Open it in a worker thread, and
    `close` it when done."""

    def __init__(self, blocks: BlockMap) -> None:
        self.blocks = blocks
        self._starts = [extent.start for extent in blocks.extents]
        self._files: dict[str, _Writer] = {}
        try:
            for extent in blocks.extents:
                if extent.file is not None and extent.file not in self._files:
                    fd = os.open(extent.file, os.O_WRONLY)
                    self._files[extent.file] = _Writer(fd, open_direct(extent.file))
        except BaseException:
            self.close()
            raise

    def write(self, offset: int, data: memoryview, *, aligned: bool = False) -> None:
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
            # A part starting inside the buffer stays page-aligned when its distance from the start is.
            part_aligned = aligned and (position - offset) % DIRECT_ALIGNMENT == 0
            self._files[extent.file].write(extent.file_offset + position - extent.start, part, part_aligned)
            position = upto
            index += 1

    def hole(self, offset: int, length: int) -> None:
        """Nothing: a fresh content reads as zeros where nothing was written."""

    def close(self) -> None:
        """Close the files opened for writing."""
        files, self._files = self._files, {}
        for writer in files.values():
            writer.close_direct()
            os.close(writer.fd)
