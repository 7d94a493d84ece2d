"""How one chunk is named and stored: SHA-256 of its plain bytes, then a one-byte codec tag and the payload.

The name is taken before compression, so the same data deduplicates whatever codec wrote it, and every stored
chunk says how to read it back (a repository can change its compression setting at any time).
"""

import enum
import functools
import hashlib
import threading
import zlib

import zstandard

from plugins.chunked.errors import ChunkCorrupted


class Compression(enum.StrEnum):
    """Compression of chunk payloads. zstd level 1 is the default: on this project's measurements it compresses
    as well as zlib level 1 at twice the speed, and gives up on incompressible data at about 700 MB/s where zlib
    crawls at about 40 MB/s."""

    NONE = "none"
    ZLIB = "zlib"
    ZSTD = "zstd"


_TAG_RAW = b"\x00"
_TAG_ZLIB = b"\x01"
_TAG_ZSTD = b"\x02"
_ZSTD_LEVEL = 1
_ZLIB_LEVEL = 1


class _Zstd(threading.local):
    """One zstd compressor and decompressor per thread (neither may be shared between threads); making a new one
    per chunk cost more than compressing an incompressible 32 KiB chunk."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_ZSTD = _Zstd()


def chunk_digest(data: bytes | bytearray | memoryview) -> str:
    """Name a chunk: the hex SHA-256 of its plain bytes."""
    return hashlib.sha256(data).hexdigest()


def chunk_name(data: bytes | bytearray | memoryview) -> str | None:
    """The chunk's digest, or None for a chunk of zeros (which is not stored): told by the digest, computed anyway,
    where a comparison with `bytes(len(data))` had each 4 MiB chunk allocate and clear 4 MiB first (a quarter of a
    second a GiB), and one with a memoryview compared byte by byte."""
    digest = chunk_digest(data)
    return None if digest == _zeros_digest(len(data)) else digest


@functools.lru_cache(maxsize=16)
def _zeros_digest(length: int) -> str:
    return chunk_digest(bytes(length))


def chunk_key(digest: str) -> str:
    """Where a chunk lives in the store; fanned out by its first three hex digits (4096 directories)."""
    return f"chunks/{digest[:3]}/{digest}"


Buffer = bytes | bytearray | memoryview
Stored = tuple[Buffer, ...]
"""A chunk's stored form in parts, stored one after the other: a raw chunk is its codec byte, then its bytes as they
were read, which a local store writes with one `writev` and never joins into a copy (a fresh 4 MiB copy per 4 MiB
chunk, with its page faults, cost half a second a GiB)."""


def encode_chunk_parts(data: Buffer, compression: Compression) -> Stored:
    """Return the stored form of a chunk in parts; stored raw whenever compressing would not make it smaller."""
    if compression is Compression.ZSTD:
        packed = _ZSTD.compressor.compress(data)
        if len(packed) + 1 < len(data):
            return (_TAG_ZSTD + packed,)
    elif compression is Compression.ZLIB:
        packed = zlib.compress(data, _ZLIB_LEVEL)
        if len(packed) + 1 < len(data):
            return (_TAG_ZLIB + packed,)
    return (_TAG_RAW, data)


def encode_chunk(data: Buffer, compression: Compression) -> bytes:
    """Return the stored form of a chunk as one object."""
    return joined(encode_chunk_parts(data, compression))


def joined(stored: Stored) -> bytes:
    """A stored form as one object (for a store that takes one body)."""
    return stored[0] if len(stored) == 1 and isinstance(stored[0], bytes) else b"".join(stored)


def stored_length(stored: Stored) -> int:
    """Bytes of a stored form."""
    return sum(memoryview(part).nbytes for part in stored)


def decode_chunk(stored: bytes | memoryview, digest: str, expected_length: int) -> bytes | memoryview:
    """Return a chunk's plain bytes after checking its length and SHA-256; raise `ChunkCorrupted` otherwise. A raw
    chunk comes back as a view of `stored`, not a copy of it (valid as long as `stored` is)."""
    view = memoryview(stored)
    if not view:
        raise ChunkCorrupted(f"chunk {digest} is empty")
    tag, payload = view[0], view[1:]
    data = payload if tag == _TAG_RAW[0] else _decompress(tag, payload, digest, expected_length)
    _check(data, digest, expected_length)
    return data


def decode_into(tag: int, place: memoryview, payload_length: int, digest: str) -> None:
    """Finish a chunk read in place: its codec byte `tag`, then `payload_length` bytes of payload read into `place`,
    which is the size of the plain chunk (a payload longer than that is a corrupted chunk). Leave the plain bytes in
    `place`, checked against `digest`; raise `ChunkCorrupted` otherwise. A raw chunk, the common case for data that
    does not compress, is then never copied: it was read where it belongs."""
    if payload_length < 0:
        raise ChunkCorrupted(f"chunk {digest} is empty")
    if payload_length > len(place):
        raise ChunkCorrupted(f"chunk {digest} holds more than the {len(place)} bytes expected")
    if tag == _TAG_RAW[0]:
        _check(place[:payload_length], digest, len(place))
        return
    data = _decompress(tag, place[:payload_length], digest, len(place))
    _check(data, digest, len(place))
    place[:] = data


def _decompress(tag: int, payload: memoryview, digest: str, expected_length: int) -> bytes:
    try:
        if tag == _TAG_ZSTD[0]:
            return _ZSTD.decompressor.decompress(payload, max_output_size=expected_length)
        if tag == _TAG_ZLIB[0]:
            return zlib.decompress(payload)
    except (zstandard.ZstdError, zlib.error) as error:
        raise ChunkCorrupted(f"chunk {digest} does not decompress: {error}") from None
    raise ChunkCorrupted(f"chunk {digest} has an unknown codec tag {bytes([tag])!r}")


def _check(data: bytes | memoryview, digest: str, expected_length: int) -> None:
    if len(data) != expected_length:
        raise ChunkCorrupted(f"chunk {digest} holds {len(data)} bytes where {expected_length} were expected")
    actual = chunk_digest(data)
    if actual != digest:
        raise ChunkCorrupted(f"chunk {digest} is corrupted: its content hashes to {actual}")
