"""Backup figures of the chunked format on a directory store: full backup speed, and what an incremental writes.

`measure_backup` is what bench/datapath.py reports; run alone, this prints one JSON line for a volume it makes:
    python bench/backup_figures.py [--size-mib 1024]

The incremental changes 5% of the volume the way a guest does: contiguous runs of 64 KiB to 1 MiB (4 KiB aligned)
at random places, filled with random (incompressible) bytes, so compression cannot flatter the ratio.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.chunked.directory import DirectoryBlobStore
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import ChunkedSettings

MIB = 1024 * 1024
PAGE = 4096
CHANGED_FRACTION = 0.05
EXTENT_PAGES = (16, 256)  # 64 KiB to 1 MiB


def change_volume(path: Path, fraction: float = CHANGED_FRACTION, seed: int = 7) -> int:
    """Overwrite `fraction` of the file in scattered runs; return the number of distinct bytes changed."""
    rng = random.Random(seed)
    size = path.stat().st_size
    pages = size // PAGE
    target = int(pages * fraction)
    changed: set[int] = set()
    with path.open("r+b") as volume:
        while len(changed) < target:
            run = min(rng.randint(*EXTENT_PAGES), target - len(changed), pages)
            first = rng.randrange(0, pages - run + 1)
            volume.seek(first * PAGE)
            volume.write(rng.randbytes(run * PAGE))
            changed.update(range(first, first + run))
        volume.flush()
        os.fsync(volume.fileno())
    return len(changed) * PAGE


async def measure_backup(volume_path: Path, workdir: Path) -> tuple[float, float]:
    """Return (full backup MiB/s, incremental bytes written / bytes changed) for `volume_path`.

    The volume is copied into `workdir` first, so the caller's file is left as it was.
    """
    scratch = Path(tempfile.mkdtemp(prefix="backup-figures-", dir=workdir))
    try:
        volume = scratch / "volume.raw"
        await asyncio.to_thread(shutil.copyfile, volume_path, volume)
        repository = ChunkedRepository(DirectoryBlobStore(scratch / "store"), ChunkedSettings())
        size = volume.stat().st_size

        started = time.perf_counter()
        await repository.backup(backup_id="full", volume_id="bench-volume", source=volume)
        full_seconds = time.perf_counter() - started

        changed = await asyncio.to_thread(change_volume, volume)
        incremental = await repository.backup(
            backup_id="incremental", volume_id="bench-volume", source=volume, parent_id="full"
        )
        return size / MIB / full_seconds, incremental.bytes_written / changed
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def _make_volume(path: Path, size_mib: int) -> None:
    """A volume of random bytes with its last eighth left as a hole, like a disk not yet filled."""
    with path.open("wb") as volume:
        for _ in range(size_mib * 7 // 8):
            volume.write(os.urandom(MIB))
        volume.truncate(size_mib * MIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1024)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backup-bench-") as directory:
        workdir = Path(directory)
        volume = workdir / "source.raw"
        _make_volume(volume, arguments.size_mib)
        full_mib_per_s, ratio = asyncio.run(measure_backup(volume, workdir))
    print(
        json.dumps(
            {
                "bench": "backup",
                "volume_mib": arguments.size_mib,
                "chunk_kib": ChunkedSettings().chunk_size // 1024,
                "backup_full_mib_per_s": round(full_mib_per_s, 1),
                "incremental_written_ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
