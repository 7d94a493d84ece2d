"""Reading a volume's layers from their qcow2 headers: who backs whom, which layers are live, which are garbage.

The headers are the truth for the chain (no separate journal can disagree with them); snapshot records only say
which layer a live snapshot holds.
"""

from dataclasses import dataclass
from pathlib import Path

from plugins.qcow2fs.context import PoolContext
from plugins.qcow2fs.layout import ACTIVE, read_record
from plugins.qcow2fs.qemu_img import read_header
from plugins.sdk.types import Chain, ChainLink


@dataclass(frozen=True)
class Layers:
    """The qcow2 files of one volume directory and their backing files (a name in the directory, or a path)."""

    backing: dict[str, str | None]
    live: dict[str, str]
    """Layer file name -> the live snapshot that holds it."""

    def children(self, name: str) -> list[str]:
        """Layers of the volume backed by `name`."""
        return sorted(child for child, parent in self.backing.items() if parent == name)

    def hidden(self, name: str) -> bool:
        """A layer that neither the volume writes to nor a live snapshot holds: only kept for its children."""
        return name != ACTIVE and name not in self.live


def scan_layers(context: PoolContext, volume_id: str) -> Layers:
    """Read every layer header and the live snapshots of the volume (blocking: call it in a thread)."""
    directory = context.layout.volume_dir(volume_id)
    backing: dict[str, str | None] = {}
    for image in sorted(directory.glob("*.qcow2")):
        backing[image.name] = read_header(image).backing_file
    live: dict[str, str] = {}
    if context.layout.snapshots.exists():
        for record_path in context.layout.snapshots.glob("*.json"):
            record = read_record(record_path)
            if record is None or record.get("volume_id") != volume_id:
                continue
            snapshot_id = str(record["snapshot_id"])
            kind = "snap" if record["kind"] == "delta" else "full"
            live[f"{kind}-{snapshot_id}.qcow2"] = snapshot_id
    return Layers(backing=backing, live=live)


def collect_garbage(context: PoolContext, volume_id: str) -> list[str]:
    """Delete hidden layers that no layer needs any more, repeatedly (blocking); return what was deleted."""
    _, deleted = drop_orphans(context, volume_id, scan_layers(context, volume_id))
    return deleted


def drop_orphans(context: PoolContext, volume_id: str, layers: Layers) -> tuple[Layers, list[str]]:
    """`collect_garbage` on layers just scanned (blocking): the layers left, and what was deleted.

    Deleting a layer changes no other header, so the scan stays true without reading the headers again.
    """
    directory = context.layout.volume_dir(volume_id)
    backing = dict(layers.backing)
    deleted: list[str] = []
    while True:
        remaining = Layers(backing=backing, live=layers.live)
        orphans = [name for name in backing if remaining.hidden(name) and not remaining.children(name)]
        if not orphans:
            return remaining, deleted
        for name in orphans:
            (directory / name).unlink(missing_ok=True)
            del backing[name]
            deleted.append(name)


def describe_chain(context: PoolContext, volume_id: str, layers: Layers | None = None) -> Chain:
    """The volume's own layers from `active.qcow2` down (a template it is built on is not one of them), from
    `layers` when the caller has just scanned them (blocking)."""
    directory = context.layout.volume_dir(volume_id)
    if layers is None:
        layers = scan_layers(context, volume_id)
    links: list[ChainLink] = []
    name: str | None = ACTIVE
    while name is not None and name in layers.backing and len(links) <= len(layers.backing):
        path: Path = directory / name
        links.append(
            ChainLink(
                path=str(path),
                snapshot_id=layers.live.get(name),
                active=name == ACTIVE,
                allocated_bytes=path.stat().st_blocks * 512,
                children=len(layers.children(name)),
            )
        )
        name = layers.backing[name]
    return Chain(volume_id=volume_id, links=tuple(links))
