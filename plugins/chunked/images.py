"""Templates and ISOs in the chunked format: an image is a manifest of chunks in its own corner of the store,
checked against the checksum the operator registered before anything is stored."""

import asyncio
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from plugins.chunked.blocks import write_backup_from_blocks
from plugins.chunked.digests import WholeDigest
from plugins.chunked.manifest import BackupManifest, BackupSummary
from plugins.chunked.ports import BlobStore
from plugins.chunked.prefixed import prefixed
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import ChunkedSettings, ProgressCallback
from plugins.chunked.transit import TransitCopies
from plugins.chunked.writer import BeforeManifest, check_id
from plugins.sdk.blocks import BlockMap
from plugins.sdk.protocols import ContentOpener
from schemas.agent import CHUNK_LIST_CHECKSUM
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

IMAGE_PREFIX = "images"
IMAGE_CHUNK_SIZE = 4 * 1024 * 1024
_ALGORITHMS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_CLOUDSTACK_STYLE = re.compile(r"^\{(?P<algorithm>[A-Za-z0-9-]+)\}(?P<digest>[0-9a-fA-F]+)$")
_READ_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageRecord:
    """A stored template or ISO."""

    image_id: str
    kind: str
    disk_format: str
    size: int
    checksum: str
    """`sha256:<hex>` of the whole image, what a consumer can verify a download against; empty for a transit copy
    (`put_blocks(transit=True)`), stored without it."""
    created_at: datetime
    chunk_list: str | None = None
    """`chunklist-sha256:<hex>` of the stored chunk list (`BackupManifest.chunk_list_digest`), where the manifest was
    read whole: what names a copy stored without its SHA-256."""


def parse_checksum(value: str) -> tuple[str, str]:
    """Split `sha256:<hex>`, CloudStack's `{SHA-256}<hex>`, or a bare hex digest (its length tells the algorithm)."""
    text = value.strip()
    styled = _CLOUDSTACK_STYLE.match(text)
    if styled:
        algorithm, digest = styled["algorithm"].lower().replace("-", ""), styled["digest"]
    elif ":" in text:
        algorithm, digest = text.split(":", 1)
        algorithm = algorithm.lower().replace("-", "")
    else:
        by_length = {length: name for name, length in _ALGORITHMS.items()}
        algorithm, digest = by_length.get(len(text), "unknown"), text
    if _ALGORITHMS.get(algorithm) != len(digest) or not re.fullmatch(r"[0-9a-fA-F]+", digest):
        raise InvalidArgument(
            f"checksum {value!r} is not md5, sha1, sha256 or sha512 in hex (e.g. sha256:<64 hex digits>)",
            field="checksum",
        )
    return algorithm, digest.lower()


def _digest_file(path: Path, algorithms: set[str]) -> dict[str, str]:
    hashers = {name: hashlib.new(name) for name in algorithms}
    with path.open("rb") as image:
        while block := image.read(_READ_BYTES):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _record(manifest: BackupSummary) -> ImageRecord:
    return ImageRecord(
        image_id=manifest.volume_id,
        kind=manifest.labels.get("kind", "template"),
        disk_format=manifest.labels.get("disk_format", "raw"),
        size=manifest.size,
        checksum=manifest.labels.get("checksum", ""),
        created_at=manifest.created_at,
        chunk_list=chunk_list_checksum(manifest) if isinstance(manifest, BackupManifest) else None,
    )


def chunk_list_checksum(manifest: BackupManifest) -> str:
    """The manifest's chunk list digest as a checksum (`chunklist-sha256:<hex>`)."""
    return f"{CHUNK_LIST_CHECKSUM}{manifest.chunk_list_digest()}"


def _check_expected(image_id: str, expected: tuple[str, str] | None, digests: dict[str, str]) -> None:
    if expected and digests[expected[0]] != expected[1]:
        algorithm, registered = expected
        raise InvalidArgument(
            f"image {image_id}: the file's {algorithm} is {digests[algorithm]}, not the registered {registered}",
            field="checksum",
        )


def _same_image(existing: BackupSummary, kind: str, disk_format: str, sha256: str) -> ImageRecord:
    """The image already stored under this id, if it is the same one; `AlreadyExists` otherwise."""
    wanted_labels = {"kind": kind, "disk_format": disk_format, "checksum": sha256}
    if any(existing.labels.get(name) != value for name, value in wanted_labels.items()):
        raise AlreadyExists(
            f"image {existing.volume_id} already exists as another image (kind, format or content differ)",
            field="image_id",
        )
    return _record(existing)


async def _stored(chunks: ChunkedRepository, image_id: str) -> BackupManifest | None:
    """The manifest stored under `image_id` in `chunks`, or None."""
    try:
        return await chunks.manifest(image_id)
    except NotFound:
        return None


@contextmanager
def _missing_image(image_id: str) -> Iterator[None]:
    """A missing backup of the image's repository is a missing image (a missing chunk stays what it is)."""
    try:
        yield
    except NotFound as error:
        if error.field == "backup_id":
            raise NotFound(f"image {image_id} does not exist", field="image_id") from None
        raise


class ImageRepository:
    """Images in a store shared with backups, under `images/` (their own chunks and manifests).

    Images are cut in `IMAGE_CHUNK_SIZE` chunks whatever the store's setting for backups: an image is written once
    and read whole, so small chunks (which keep an incremental backup's writes near what changed) would only multiply
    the objects to write, read and verify. Each manifest records its chunk size, so images stored before stay
    readable."""

    def __init__(self, store: BlobStore, settings: ChunkedSettings | None = None) -> None:
        self.settings = replace(settings or ChunkedSettings(), chunk_size=IMAGE_CHUNK_SIZE)
        self.chunks = ChunkedRepository(prefixed(store, IMAGE_PREFIX), self.settings)
        self.transit = TransitCopies(store, self.settings.concurrency)

    def _transit(self, image_id: str) -> ChunkedRepository:
        """The repository of the transit copy `image_id`, in its own corner (`plugins.chunked.transit`)."""
        return ChunkedRepository(self.transit.store_of(image_id), self.settings)

    async def put(
        self,
        image_id: str,
        source: Path,
        *,
        kind: str = "template",
        disk_format: str = "qcow2",
        checksum: str | None = None,
        progress: ProgressCallback | None = None,
        before_manifest: BeforeManifest | None = None,
    ) -> ImageRecord:
        """Store the image after checking `checksum` (when given); the same image again is returned as it is.

        A registered checksum is checked before anything is stored (a second read of the source then stores it);
        without one (a copy of a volume), the image's sha256 is computed in the same pass that stores its chunks.
        """
        check_id(image_id, "image_id")
        expected = parse_checksum(checksum) if checksum else None
        if not await asyncio.to_thread(source.is_file):
            raise NotFound(f"image source {source} does not exist", field="source")
        wanted = {"sha256"} | ({expected[0]} if expected else set())
        existing = await _stored(self.chunks, image_id)
        if expected is not None or existing is not None:
            digests = await asyncio.to_thread(_digest_file, source, wanted)
            _check_expected(image_id, expected, digests)
            if existing is not None:
                return _same_image(existing, kind, disk_format, f"sha256:{digests['sha256']}")
        whole = WholeDigest({"sha256"})

        def labels() -> dict[str, str]:
            return {"kind": kind, "disk_format": disk_format, "checksum": f"sha256:{whole.hexdigests()['sha256']}"}

        result = await self.chunks.backup(
            backup_id=image_id,
            volume_id=image_id,
            source=source,
            labels=labels,
            progress=progress,
            before_manifest=before_manifest,
            whole=whole,
        )
        return _record(result.manifest)

    async def put_blocks(
        self,
        image_id: str,
        blocks: BlockMap,
        *,
        kind: str = "template",
        progress: ProgressCallback | None = None,
        before_manifest: BeforeManifest | None = None,
        transit: bool = False,
    ) -> ImageRecord:
        """Store a volume's bytes as a raw image, read in place through its block map (no staging file; holes are
        not stored but are hashed as the zeros they read as, so the checksum is the raw image's). The same image
        again is returned as it is.

        `transit=True` stores a copy that only `get_into` reads back (a migration's transit copy) in its own corner,
        not durable (`plugins.chunked.transit`), and without the image's SHA-256 (a second hash of every byte beside
        the chunks' own): its `chunk_list` names it."""
        check_id(image_id, "image_id")
        chunks = self._transit(image_id) if transit else self.chunks
        existing = await _stored(chunks, image_id)
        if existing is not None:
            if existing.labels.get("kind") != kind or existing.labels.get("disk_format") != "raw":
                raise AlreadyExists(f"image {image_id} already exists as another image", field="image_id")
            return _record(existing)
        whole = None if transit else WholeDigest({"sha256"})

        def labels() -> dict[str, str]:
            checksum = {"checksum": f"sha256:{whole.hexdigests()['sha256']}"} if whole is not None else {}
            return {"kind": kind, "disk_format": "raw", **checksum}

        written = await write_backup_from_blocks(
            chunks.store,
            chunks.settings,
            backup_id=image_id,
            volume_id=image_id,
            blocks=blocks,
            progress=progress,
            before_manifest=before_manifest,
            labels=labels,
            whole=whole,
        )
        return _record(written.result.manifest)

    async def get_into(
        self,
        image_id: str,
        content: ContentOpener,
        progress: ProgressCallback | None = None,
        *,
        checksum: str | None = None,
    ) -> ImageRecord:
        """Write an image, taken as raw bytes (the caller knows its format), into a volume's fresh content opened at
        its size (a `ContentWriter`'s places), every chunk verified first; the content's owner makes it durable.
        The id names an image or a transit copy (`put_blocks(transit=True)`). With `checksum` (`sha256:<hex>`, or
        `chunklist-sha256:<hex>` for a transit copy), one recorded with another is refused before anything is
        opened."""
        check_id(image_id, "image_id")

        def refuse_another(manifest: BackupManifest) -> None:
            if checksum is None:
                return
            by_list = checksum.startswith(CHUNK_LIST_CHECKSUM)
            recorded = chunk_list_checksum(manifest) if by_list else manifest.labels.get("checksum", "")
            if recorded != checksum:
                raise FailedPrecondition(
                    f"image {image_id} has checksum {recorded}, not the expected {checksum}", field="checksum"
                )

        with _missing_image(image_id):
            try:
                restored = await self.chunks.restore_into(image_id, content, progress, before_open=refuse_another)
            except NotFound as error:
                if error.field != "backup_id":
                    raise
                # No image of that id: a transit copy, which only a migration's copy in reads.
                transit = self._transit(image_id)
                restored = await transit.restore_into(image_id, content, progress, before_open=refuse_another)
        return _record(restored.manifest)

    async def get(self, image_id: str, target: Path, progress: ProgressCallback | None = None) -> ImageRecord:
        """Write the image to `target`, every chunk verified. `target` is a staging file its caller reads once (into
        a pool, which makes its own copy durable): it is not fsynced."""
        check_id(image_id, "image_id")
        with _missing_image(image_id):
            restored = await self.chunks.restore(image_id, target, progress, durable=False)
        return _record(restored.manifest)

    async def info(self, image_id: str) -> ImageRecord:
        """The stored image's record; `NotFound` if there is none."""
        check_id(image_id, "image_id")
        try:
            return _record(await self.chunks.manifest(image_id))
        except NotFound:
            raise NotFound(f"image {image_id} does not exist", field="image_id") from None

    async def delete(self, image_id: str) -> bool:
        """Delete the image and free its chunks, or the transit copy of that id; says whether it existed (deleting
        twice is fine)."""
        check_id(image_id, "image_id")
        if await self.transit.delete(image_id):
            return True
        existed, _ = await self.chunks.delete(image_id)
        return existed

    async def list(self) -> "list[ImageRecord]":
        """Every stored image, oldest first."""
        return [_record(manifest) for manifest in await self.chunks.backups()]
