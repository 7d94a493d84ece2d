"""The chunked format's pieces: chunk encoding and verification, the manifest and its version check."""

import gzip
import json
import os
from datetime import UTC, datetime

import pytest

from plugins.chunked.codec import Compression, chunk_digest, chunk_key, decode_chunk, decode_into, encode_chunk
from plugins.chunked.errors import ChunkCorrupted, IncompatibleFormat
from plugins.chunked.manifest import BackupManifest, backup_id_of, decode_manifest, encode_manifest, manifest_key
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import InvalidArgument

pytestmark = pytest.mark.unit

TEXT = b"strata stores chunks by the SHA-256 of their plain bytes. " * 600


@pytest.mark.parametrize("compression", list(Compression))
def test_a_chunk_round_trips_with_every_codec(compression: Compression) -> None:
    stored = encode_chunk(TEXT, compression)
    assert decode_chunk(stored, chunk_digest(TEXT), len(TEXT)) == TEXT
    if compression is not Compression.NONE:
        assert len(stored) < len(TEXT) / 4


def test_incompressible_data_is_stored_raw_with_one_byte_of_overhead() -> None:
    data = os.urandom(32768)
    stored = encode_chunk(data, Compression.ZSTD)
    assert len(stored) == len(data) + 1
    assert decode_chunk(stored, chunk_digest(data), len(data)) == data


@pytest.mark.parametrize("compression", list(Compression))
def test_a_flipped_byte_is_detected(compression: Compression) -> None:
    stored = bytearray(encode_chunk(TEXT, compression))
    stored[len(stored) // 2] ^= 0x40
    with pytest.raises(ChunkCorrupted):
        decode_chunk(bytes(stored), chunk_digest(TEXT), len(TEXT))


def test_a_truncated_or_unknown_chunk_is_detected() -> None:
    digest = chunk_digest(TEXT)
    with pytest.raises(ChunkCorrupted, match="bytes where"):
        decode_chunk(encode_chunk(TEXT, Compression.NONE)[:-1], digest, len(TEXT))
    with pytest.raises(ChunkCorrupted, match="unknown codec"):
        decode_chunk(b"\x09" + TEXT, digest, len(TEXT))


def _read_in_place(stored: bytes, length: int) -> tuple[int, bytearray, int]:
    """What a scatter read of `stored` into (tag byte, a place of `length` bytes, a spare byte) leaves."""
    place = bytearray(length)
    body = stored[1 : 1 + length + 1]
    place[: min(len(body), length)] = body[:length]
    return stored[0], place, len(stored) - 1


@pytest.mark.parametrize("compression", list(Compression))
@pytest.mark.parametrize("data", [TEXT, os.urandom(32768)], ids=["compressible", "random"])
def test_a_chunk_read_in_place_is_decoded_and_checked_where_it_lies(compression: Compression, data: bytes) -> None:
    tag, place, payload = _read_in_place(encode_chunk(data, compression), len(data))
    decode_into(tag, memoryview(place), payload, chunk_digest(data))
    assert place == data


def test_a_chunk_read_in_place_that_is_damaged_long_short_or_empty_is_refused() -> None:
    digest = chunk_digest(TEXT)
    stored = bytearray(encode_chunk(TEXT, Compression.NONE))
    stored[100] ^= 0x40
    tag, place, payload = _read_in_place(bytes(stored), len(TEXT))
    with pytest.raises(ChunkCorrupted, match="hashes to"):
        decode_into(tag, memoryview(place), payload, digest)
    with pytest.raises(ChunkCorrupted, match="more than"):
        decode_into(0, memoryview(bytearray(TEXT)), len(TEXT) + 1, digest)
    with pytest.raises(ChunkCorrupted, match="bytes where"):
        decode_into(0, memoryview(bytearray(TEXT)), len(TEXT) - 1, digest)
    with pytest.raises(ChunkCorrupted, match="empty"):
        decode_into(0, memoryview(bytearray(TEXT)), -1, digest)
    with pytest.raises(ChunkCorrupted, match="unknown codec"):
        decode_into(9, memoryview(bytearray(TEXT)), 100, digest)


def test_chunk_keys_fan_out_by_digest_prefix() -> None:
    digest = chunk_digest(b"x")
    assert chunk_key(digest) == f"chunks/{digest[:3]}/{digest}"


def _manifest() -> BackupManifest:
    return BackupManifest(
        backup_id="b1",
        volume_id="vol-1",
        size=70_000,
        chunk_size=32768,
        created_at=datetime.now(UTC),
        chunks=["a" * 64, None, "b" * 64],
    )


def test_the_manifest_round_trips_and_names_its_backup() -> None:
    manifest = _manifest()
    key = manifest_key("b1")
    assert backup_id_of(key) == "b1"
    assert backup_id_of("chunks/abc/abcdef") is None
    assert decode_manifest(encode_manifest(manifest), key) == manifest
    assert manifest.chunk_length(2) == 70_000 - 2 * 32768
    assert manifest.digests() == {"a" * 64, "b" * 64}


def test_a_manifest_of_a_newer_format_is_refused_not_misread() -> None:
    document = json.loads(_manifest().model_dump_json())
    document["format_version"] = 2
    with pytest.raises(IncompatibleFormat, match="format version 2"):
        decode_manifest(gzip.compress(json.dumps(document).encode()), "backups/b1")
    with pytest.raises(IncompatibleFormat, match="not a readable manifest"):
        decode_manifest(b"garbage", "backups/b1")
    with pytest.raises(IncompatibleFormat, match="not a strata-chunked manifest"):
        decode_manifest(gzip.compress(b'{"format": "other"}'), "backups/b1")


def test_a_chunk_size_that_is_not_whole_pages_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        ChunkedSettings(chunk_size=5000)
    assert error.value.field == "chunk_size"
