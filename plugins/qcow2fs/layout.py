"""Where qcow2fs keeps things under the pool directory, and its small JSON records written atomically.

    <path>/.strata-pool.json              the pool's id and state
    <path>/volumes/<volume_id>/volume.json  the request that made the volume (idempotency) and its state
    <path>/volumes/<volume_id>/active.qcow2 the layer the volume writes to: its stable path
    <path>/volumes/<volume_id>/snap-<id>.qcow2  a delta snapshot's layer (kept, hidden, while newer layers need it)
    <path>/volumes/<volume_id>/full-<id>.qcow2  a full snapshot: a standalone image until a revert builds on it
    <path>/snapshots/<snapshot_id>.json     a snapshot's record (ids are unique across the pool)
    <path>/staging/                         files an agent stages here to be adopted as volumes (a rename, no copy)

Backing files are named relative to the layer, so a shared mount works at any path on every host.
"""

import json
import os
import re
from pathlib import Path
from typing import Any

from plugins.sdk.errors import InvalidArgument

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ACTIVE = "active.qcow2"


def check_id(value: str, what: str) -> str:
    """Refuse an id that could escape the pool directory or is not a plain name."""
    if not _ID.match(value):
        raise InvalidArgument(
            f"{what} must be 1-128 letters, digits, '.', '_' or '-', starting alphanumeric", field=what
        )
    return value


class Layout:
    """Paths of one pool."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def pool_record(self) -> Path:
        return self.root / ".strata-pool.json"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    def volume_dir(self, volume_id: str) -> Path:
        return self.volumes / check_id(volume_id, "volume_id")

    def volume_record(self, volume_id: str) -> Path:
        return self.volume_dir(volume_id) / "volume.json"

    def active(self, volume_id: str) -> Path:
        return self.volume_dir(volume_id) / ACTIVE

    def delta_layer(self, volume_id: str, snapshot_id: str) -> Path:
        return self.volume_dir(volume_id) / f"snap-{check_id(snapshot_id, 'snapshot_id')}.qcow2"

    def full_image(self, volume_id: str, snapshot_id: str) -> Path:
        return self.volume_dir(volume_id) / f"full-{check_id(snapshot_id, 'snapshot_id')}.qcow2"

    def snapshot_record(self, snapshot_id: str) -> Path:
        return self.snapshots / f"{check_id(snapshot_id, 'snapshot_id')}.json"


def write_record(path: Path, data: dict[str, Any]) -> None:  # Any: a JSON object
    """Replace `path` with `data` as JSON, atomically and durably (blocking: call it in a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    sync_dir(path.parent)


def read_record(path: Path) -> dict[str, Any] | None:  # Any: a JSON object
    """The JSON record at `path`, or None if there is none (blocking)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path.name} is not a record")
    return data


def sync_dir(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
