"""The backup manifest: a self-describing, versioned record of one backup, written after all of its chunks.

Each manifest lists every chunk of the volume (a synthetic full), not only the ones its backup wrote: a restore
reads one manifest, and deleting a parent never breaks its children. `parent_id` records the lineage and is what
the next incremental compares against.
"""

import gzip
import hashlib
import json
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugins.chunked.errors import IncompatibleFormat

FORMAT_NAME = "strata-chunked"
FORMAT_VERSION = 1
MANIFEST_PREFIX = "backups/"
_MANIFEST_SUFFIX = ".manifest.json.gz"
_SUMMARY_SUFFIX = ".summary.json"


class BackupSummary(BaseModel):
    """A backup without its chunk list: what a listing shows. Stored beside the manifest (just before it), so a
    listing reads a few hundred bytes per backup instead of a list of every chunk."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["strata-chunked"] = Field(default="strata-chunked", description="Identifies the format on disk.")
    format_version: int = Field(default=FORMAT_VERSION, description="Bumped on any change a reader must know.")
    backup_id: str = Field(description="The caller's id for this backup; every retry uses the same one.")
    volume_id: str = Field(description="The volume (or image) the bytes came from.")
    size: int = Field(ge=0, description="Size of the source in bytes.")
    chunk_size: int = Field(gt=0, description="Bytes per chunk; the last chunk may be shorter.")
    parent_id: str | None = Field(default=None, description="The backup this one was taken incrementally against.")
    created_at: datetime = Field(description="When the backup finished (UTC).")
    written_bytes: int = Field(default=0, ge=0, description="Stored bytes of the chunks this backup added.")
    labels: dict[str, str] = Field(default_factory=dict, description="What the caller attached (kind, checksum).")


class BackupManifest(BackupSummary):
    """One backup of one volume: its geometry, its chunks in order, and where it came from."""

    chunks: list[str | None] = Field(description="Hex SHA-256 of each chunk in order; null for an all-zero chunk.")

    def chunk_length(self, index: int) -> int:
        """Length of chunk `index` (only the last one can be shorter)."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def digests(self) -> set[str]:
        """The distinct chunks this backup references."""
        return {digest for digest in self.chunks if digest is not None}

    def chunk_list_digest(self) -> str:
        """Hex SHA-256 of the geometry and the chunk list: it names the bytes the chunks make up as surely as their
        own SHA-256 does, since a restore checks every chunk against its digest (a hash list, as in a Merkle tree),
        and it costs a hash of the list instead of a second pass over every byte."""
        listed = hashlib.sha256(f"{FORMAT_NAME}/chunk-list/1 {self.size} {self.chunk_size}\n".encode())
        for digest in self.chunks:
            listed.update(f"{digest or '-'}\n".encode())
        return listed.hexdigest()


def manifest_key(backup_id: str) -> str:
    """Where the manifest of `backup_id` lives."""
    return f"{MANIFEST_PREFIX}{backup_id}{_MANIFEST_SUFFIX}"


_Model = TypeVar("_Model", bound=BackupSummary)


def summary_key(backup_id: str) -> str:
    """Where the summary of `backup_id` lives."""
    return f"{MANIFEST_PREFIX}{backup_id}{_SUMMARY_SUFFIX}"


def summary_of(manifest: BackupManifest) -> BackupSummary:
    """The manifest without its chunk list."""
    return BackupSummary.model_validate(manifest.model_dump(exclude={"chunks"}))


def encode_summary(manifest: BackupManifest) -> bytes:
    """Serialise the summary as plain JSON."""
    return summary_of(manifest).model_dump_json().encode()


def decode_summary(stored: bytes, key: str) -> BackupSummary:
    """Parse a stored summary, refusing a foreign or newer format like a manifest."""
    try:
        document = json.loads(stored)
    except ValueError as error:
        raise IncompatibleFormat(f"{key} is not a readable summary: {error}") from None
    return _validated(BackupSummary, document, key)


def backup_id_of(key: str, *, summary: bool = False) -> str | None:
    """The backup id a manifest key (or, with `summary`, a summary key) names, or None for any other key."""
    suffix = _SUMMARY_SUFFIX if summary else _MANIFEST_SUFFIX
    if key.startswith(MANIFEST_PREFIX) and key.endswith(suffix):
        return key[len(MANIFEST_PREFIX) : -len(suffix)]
    return None


def encode_manifest(manifest: BackupManifest) -> bytes:
    """Serialise as gzip'd JSON: `zcat` shows it, and the digests shrink to about their binary size."""
    return gzip.compress(manifest.model_dump_json().encode(), compresslevel=6, mtime=0)


def decode_manifest(stored: bytes, key: str) -> BackupManifest:
    """Parse a stored manifest; a newer or foreign format is refused rather than misread."""
    try:
        document = json.loads(gzip.decompress(stored))
    except (OSError, EOFError, ValueError) as error:
        raise IncompatibleFormat(f"{key} is not a readable manifest: {error}") from None
    return _validated(BackupManifest, document, key)


def _validated(model: type[_Model], document: object, key: str) -> _Model:
    try:
        return model.model_validate(_checked(document, key))
    except ValidationError as error:
        raise IncompatibleFormat(f"{key} is malformed: {error.errors()[0]['msg']}") from None


def _checked(document: object, key: str) -> dict[str, object]:
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise IncompatibleFormat(f"{key} is not a {FORMAT_NAME} manifest")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleFormat(f"{key} has format version {version}; this strata reads version {FORMAT_VERSION}")
    return document
