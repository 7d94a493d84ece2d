"""Backup figures on the real data path (qcow2fs block maps read by fsbackup), with baselines from the same run.

    python bench/backup.py [--size-mib 1024] [--change-percent 5] [--workdir DIR]

prints one JSON line: {"bench": "backup", "incremental_read_ratio": ..., "incremental_written_ratio": ...,
"restore_ratio_vs_qemu_img": ..., "full_backup_mib_per_s": ..., "dd_mib_per_s": ..., ...}

A volume of random bytes (its last eighth a hole) is copied into a qcow2fs pool and snapshotted (a delta); the full
backup reads it through the snapshot's block map. Then 5% of it is rewritten with random bytes in scattered 64 KiB runs
(as a guest would, through qemu-io), snapshotted again, and backed up incrementally against the first backup: the
ratios are the bytes the incremental read and wrote over the bytes changed (targets: at most 1.1). The restore of that
incremental (the agent's path: chunks laid down in a staging file and verified, switched in as a new qcow2 volume, and
checked again against the manifest through the volume's block map) is timed against `qemu-img convert` of the same
raw data to qcow2 (target: at most 1.3). The full backup's speed is reported next to `dd` copying the same file with
fsync.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.qcow2fs.qemu_img import convert_args
from plugins.sdk.types import SnapshotKind, VolumeFormat

MIB = 1024 * 1024
RUN = 64 * 1024


async def run(*args: str) -> None:
    """Run a tool, failing loudly."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {err.decode()}")


def make_volume(path: Path, size_mib: int) -> None:
    """Random bytes in the first seven eighths, a hole in the rest."""
    with path.open("wb") as volume:
        for _ in range(size_mib * 7 // 8):
            volume.write(os.urandom(MIB))
        volume.truncate(size_mib * MIB)


async def timed(action: "asyncio.Future[object] | object") -> float:
    """Seconds an awaitable takes, after flushing dirty pages so no run pays for the previous one's writes."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    await action  # type: ignore[misc]  # every caller passes an awaitable
    return time.perf_counter() - started


async def change(image: Path, size_mib: int, percent: float, scratch: Path) -> int:
    """Rewrite `percent` of the volume with random bytes in scattered 64 KiB runs; return the bytes changed."""
    runs = int(size_mib * MIB * percent / 100) // RUN
    stride = (size_mib * 7 // 8) * MIB // runs // RUN * RUN  # spread over the data, each run cluster-aligned
    commands: list[str] = []
    for index in range(runs):
        source = scratch / f"run-{index}.bin"
        source.write_bytes(os.urandom(RUN))
        commands += ["-c", f"write -s {source} {index * stride} {RUN}"]
    for start in range(0, len(commands), 400):  # a few hundred writes per qemu-io, like a guest's burst
        await run("qemu-io", "-f", "qcow2", *commands[start : start + 400], str(image))
    return runs * RUN


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--change-percent", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=None)
    options = parser.parse_args()
    for tool in ("qemu-img", "qemu-io", "dd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install qemu-utils coreutils")
    workdir = Path(tempfile.mkdtemp(prefix="strata-backup-bench-", dir=options.workdir))
    try:
        figures = await measure(workdir, options.size_mib, options.change_percent)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"bench": "backup", "volume_mib": options.size_mib, **figures}))


async def measure(workdir: Path, size_mib: int, percent: float) -> dict[str, object]:
    raw = workdir / "volume.raw"
    await asyncio.to_thread(make_volume, raw, size_mib)
    data_mib = size_mib * 7 // 8
    dd_s = await timed(run("dd", f"if={raw}", f"of={workdir / 'dd.out'}", "bs=4M", "conv=fsync,sparse", "status=none"))
    (workdir / "dd.out").unlink()

    pool_dir, store_dir, scratch = workdir / "pool", workdir / "store", workdir / "scratch"
    for directory in (pool_dir, store_dir, scratch):
        directory.mkdir()
    primary = Qcow2fsDriver(Qcow2fsConfig(path=pool_dir))
    await primary.add_pool("bench")
    store = open_driver(FsBackupConfig(path=str(store_dir)))
    volume = await primary.copy_in("vol", raw, source_format=VolumeFormat.RAW)
    await primary.create_snapshot("s1", "vol", SnapshotKind.DELTA)
    started = time.perf_counter()
    full = await store.backup_blocks("b1", "vol", await primary.block_map("vol", "s1"))
    full_s = time.perf_counter() - started

    changed = await change(Path(volume.path), size_mib, percent, scratch)
    await primary.create_snapshot("s2", "vol", SnapshotKind.DELTA)
    blocks = await primary.block_map("vol", "s2", since_snapshot_id="s1")
    started = time.perf_counter()
    incremental = await store.backup_blocks("b2", "vol", blocks, parent_id="b1")
    incremental_s = time.perf_counter() - started
    if not incremental.changed_blocks:
        raise SystemExit(f"the incremental read everything: {incremental.note}")

    flat = workdir / "s2.raw"  # the same data as the backup, for the baseline
    await run("qemu-img", "convert", "-O", "raw", str(pool_dir / "volumes" / "vol" / "snap-s2.qcow2"), str(flat))
    baseline = workdir / "baseline.qcow2"
    qemu_img_s = await timed(run("qemu-img", *convert_args(flat, baseline, source_format="raw", target_format="qcow2")))
    baseline.unlink()

    async def restore() -> None:
        await primary.create_volume("restored", size_mib * MIB)
        await store.restore_into("b2", partial(primary.new_content, "restored"))
        await store.check_blocks("b2", await primary.block_map("restored"))

    restore_s = await timed(restore())
    await store.close()
    await primary.close()
    return {
        "incremental_read_ratio": round(incremental.bytes_read / changed, 3),
        "incremental_written_ratio": round(incremental.bytes_written / changed, 3),
        "restore_ratio_vs_qemu_img": round(restore_s / qemu_img_s, 3),
        "full_backup_mib_per_s": round(data_mib / full_s, 1),
        "dd_mib_per_s": round(data_mib / dd_s, 1),
        "changed_mib": round(changed / MIB, 1),
        "incremental_read_mib": round(incremental.bytes_read / MIB, 1),
        "incremental_written_mib": round(incremental.bytes_written / MIB, 1),
        "incremental_reused_mib": round(incremental.bytes_reused / MIB, 1),
        "incremental_s": round(incremental_s, 3),
        "full_backup_written_mib": round(full.bytes_written / MIB, 1),
        "restore_s": round(restore_s, 3),
        "qemu_img_convert_s": round(qemu_img_s, 3),
    }


if __name__ == "__main__":
    asyncio.run(main())
