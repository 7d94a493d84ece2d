"""`DirectoryBlobStore`: the blob store on a local directory or an NFS mount."""

import asyncio
import builtins
import ctypes
import errno
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from plugins.chunked.codec import Stored
from plugins.chunked.ports import BlobInfo
from plugins.chunked.sinks import append_all
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, StrataError, Transient

_TEMP_SUFFIX = ".partial"


def _translate(error: OSError, what: str) -> StrataError:
    """Turn an OS error into the project's error with the same meaning (never leaking a stack trace)."""
    if error.errno == errno.ENOENT:
        return NotFound(f"{what}: no such object")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"{what}: no space left on the backup directory")
    if error.errno in (errno.ENOTDIR, errno.EISDIR):
        return FailedPrecondition(f"{what}: the backup directory's layout is broken (a file where a directory belongs)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FailedPrecondition(f"{what}: the backup directory is not writable ({error.strerror})")
    # EIO, ESTALE (NFS), ETIMEDOUT...: the mount may come back; let the caller retry.
    return Transient(f"{what}: {error.strerror or error}")


def _sync_filesystem(root: Path) -> None:
    syncfs = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if syncfs is None:
        os.sync()
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # no C library to load symbols from: fall back to os.sync
    _LIBC = None


_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Have the kernel start writing the file's dirty pages now, without waiting (Linux `sync_file_range`): the
    `syncfs` before a manifest then waits for little, where it had a whole backup's chunks to write at once (0.56 s
    of a 1 GiB staged copy). A platform without it just leaves the pages to that `syncfs`."""
    start = getattr(_LIBC, "sync_file_range", None) if _LIBC is not None else None
    if start is not None:
        start(fd, ctypes.c_int64(0), ctypes.c_int64(0), _SYNC_FILE_RANGE_WRITE)


def _read_scattered(fd: int, parts: list[memoryview]) -> int:
    done = 0
    while parts:
        got = os.readv(fd, parts)
        if got == 0:
            break
        done += got
        while parts and got >= len(parts[0]):
            got -= len(parts.pop(0))
        if parts and got:
            parts[0] = parts[0][got:]
    return done


class DirectoryBlobStore:
    """Keys map to files under `root`; writes go to a temporary file, are fsynced, then renamed into place (a
    backup's chunks skip the fsync and are flushed together by `make_durable` before its manifest is written).

    The rename is atomic on POSIX filesystems (NFS included), so a crash leaves either the old object, the new one,
    or a stray `*.partial` file that listings ignore.

    `durable=False` is a store whose objects may be lost in a crash (a migration's transit copy, which its reader
    checks whole and whose loss only undoes the migration before its switch): no fsync, no early writeback, and
    `make_durable` does nothing, so its writes cost what a staging file's do.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self._root = str(root)
        self.durable = durable

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The key's file as a string (a worker thread reading thousands of chunks skips pathlib's parsing)."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise InvalidArgument(f"invalid object key {key!r}", field="key")
        if parts[-1].endswith(_TEMP_SUFFIX):
            raise InvalidArgument(f"object keys may not end in {_TEMP_SUFFIX}", field="key")
        return os.path.join(self._root, key)

    async def free_bytes(self) -> int:
        """Bytes the filesystem under `root` still gives an unprivileged writer."""
        stats = await asyncio.to_thread(os.statvfs, self.root)
        return stats.f_bavail * stats.f_frsize

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically and durably (temporary file, fsync, rename)."""
        path = self._path(key)
        try:
            await asyncio.to_thread(self._write_atomically, path, data, durable=self.durable)
        except OSError as error:
            raise _translate(error, f"writing {key}") from None

    def _write_atomically(self, path: Path, data: bytes | Stored, *, durable: bool) -> None:
        temp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            append_all(fd, (data,) if isinstance(data, bytes) else data)
            if durable:
                os.fsync(fd)
            elif self.durable:
                _start_writeback(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temp, path)

    def read_into_blocking(self, key: str, parts: Sequence[memoryview]) -> int:
        """Read the file into `parts` in the calling worker thread (`readv`, again after a short read); the bytes
        read."""
        path = self._file(key)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                return _read_scattered(fd, list(parts))
            finally:
                os.close(fd)
        except OSError as error:
            raise _translate(error, f"reading {key}") from None

    def write_new_blocking(self, key: str, data: bytes | Stored) -> bool:
        """Write the file atomically unless it exists, without an fsync (`make_durable` does one for all).

        An empty file where the object belongs is written again: it is what a crash leaves of a rename whose data
        never reached the disk (delayed allocation), and no stored object is empty (a chunk has its codec byte)."""
        path = self._path(key)
        try:
            try:
                if os.stat(path).st_size > 0:
                    return False
            except FileNotFoundError:
                pass
            self._write_atomically(path, data, durable=False)
        except OSError as error:
            raise _translate(error, f"writing {key}") from None
        return True

    async def make_durable(self) -> None:
        """Flush the filesystem under `root` (Linux `syncfs`: every file and rename written so far, in one call;
        `sync` where there is no `syncfs`); nothing for a store that is not durable."""
        if not self.durable:
            return
        try:
            await asyncio.to_thread(_sync_filesystem, self.root)
        except OSError as error:
            raise _translate(error, "flushing the backup directory") from None

    async def get(self, key: str) -> bytes:
        """Return the file's bytes; `NotFound` if there is none."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as error:
            raise _translate(error, f"reading {key}") from None

    async def exists(self, key: str) -> bool:
        """Tell whether the file exists."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.is_file)
        except OSError as error:
            raise _translate(error, f"checking {key}") from None

    async def delete(self, key: str) -> None:
        """Remove the file; a missing one is fine."""
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink, True)
        except OSError as error:
            raise _translate(error, f"deleting {key}") from None

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Yield the files whose key starts with `prefix` (temporary files of unfinished writes are skipped)."""
        try:
            infos = await asyncio.to_thread(self._scan, prefix)
        except OSError as error:
            raise _translate(error, f"listing {prefix}") from None
        for info in infos:
            yield info

    def _scan(self, prefix: str) -> "builtins.list[BlobInfo]":
        # Walk only the deepest directory the prefix names, then filter on the rest of it.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / directory if directory else self.root
        found: builtins.list[BlobInfo] = []
        if not start.is_dir():
            return found
        for dirpath, _dirnames, filenames in os.walk(start):
            relative_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.endswith(_TEMP_SUFFIX):
                    continue
                key = name if relative_dir == "." else f"{relative_dir}/{name}"
                if not key.startswith(prefix):
                    continue
                try:
                    stat = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # deleted while we walked
                found.append(BlobInfo(key=key, size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, UTC)))
        return found
