"""Data-path figures: qcow2fs's copy and coalesce against bare qemu-img on the same files in the same run, and the
chunked backup's full speed and incremental cost (from bench/backup_figures.py when it is there).

    python bench/datapath.py [--size-mib 1024] [--rounds 3] [--workdir DIR]

prints one JSON line: {"bench": "datapath", "volume_mib": ..., "copy_ratio_vs_qemu_img": ...,
"coalesce_ratio_vs_qemu_img": ..., "backup_full_mib_per_s": ..., "incremental_written_ratio": ..., ...}

The volume is real data (random bytes, with its last eighth left as a hole like a disk not yet filled). Copy is
`copy_in` of the raw volume (qemu-img convert to qcow2 under the plugin) against the same `qemu-img convert`; coalesce
merges a 25% delta into its parent through the plugin's `coalesce` against a bare `qemu-img commit` of identical copies
of the two layers (both sides freshly copied, so on-disk layout favours neither). Neither timed side frees the merged
child's old file: the bare run leaves it in place, the plugin gives it back in the background after its pivot (waited
for untimed, reported as plugin_coalesce_release_s). Bare and plugin runs alternate, dirty pages are flushed before
each, and each side keeps its best of `--rounds`. Target: each ratio at most 1.1.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.qcow2fs.qemu_img import convert_args
from plugins.sdk.types import SnapshotKind, VolumeFormat

MIB = 1024 * 1024
WRITE_MIB = 16


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


async def timed(action: Awaitable[object]) -> float:
    """Seconds an awaitable takes, after flushing dirty pages so no run pays for the previous one's writes."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    await action
    return time.perf_counter() - started


async def write_delta(image: Path, size_mib: int) -> None:
    """Write a quarter of the volume through the image, in scattered 16 MiB runs (like a busy guest)."""
    runs = size_mib // 4 // WRITE_MIB
    stride = size_mib // runs
    commands = []
    for index in range(runs):
        offset = index * stride * MIB
        commands += ["-c", f"write -P {0x30 + index % 64} {offset} {WRITE_MIB * MIB}"]
    await run("qemu-io", "-f", "qcow2", *commands, str(image))


async def measure_copy(raw: Path, workdir: Path, rounds: int) -> tuple[float, float]:
    """Best seconds of (bare qemu-img convert, plugin copy_in), alternating."""
    bare_times, plugin_times = [], []
    for round_index in range(rounds):

        async def bare() -> None:
            target = workdir / "bare-copy.qcow2"
            args = convert_args(raw, target, source_format="raw", target_format="qcow2")
            bare_times.append(await timed(run("qemu-img", *args)))
            target.unlink()

        async def plugin() -> None:
            pool = workdir / "copy-pool"
            pool.mkdir()
            driver = Qcow2fsDriver(Qcow2fsConfig(path=pool))
            await driver.add_pool("bench")
            copying = driver.copy_in("copied", raw, source_format=VolumeFormat.RAW, progress=lambda d, t: None)
            plugin_times.append(await timed(copying))
            shutil.rmtree(pool)

        for action in (bare, plugin) if round_index % 2 == 0 else (plugin, bare):
            await action()
    return min(bare_times), min(plugin_times)


async def measure_coalesce(raw: Path, workdir: Path, size_mib: int, rounds: int) -> tuple[float, float, float, float]:
    """Best seconds of (bare qemu-img commit, plugin coalesce, the plugin's background release of the merged child's
    old file after it) merging the same 25% delta into the same parent, and the median over rounds of what the plugin
    took beyond the bare commit of the same round (steadier than the ratio of bests: a round's layout and the disk's
    load move both sides together)."""
    bare_times, plugin_times, release_times = [], [], []
    for round_index in range(rounds):
        pool = workdir / f"coalesce-pool-{round_index}"
        pool.mkdir()
        driver = Qcow2fsDriver(Qcow2fsConfig(path=pool))
        await driver.add_pool("bench")
        volume = await driver.copy_in("vol", raw, source_format=VolumeFormat.RAW)
        await driver.create_snapshot("s1", "vol", SnapshotKind.DELTA)
        await write_delta(Path(volume.path), size_mib)
        await driver.create_snapshot("s2", "vol", SnapshotKind.DELTA)
        await driver.delete_snapshot("s1")
        layers = pool / "volumes" / "vol"
        bare = workdir / f"bare-chain-{round_index}"
        bare.mkdir()
        for name in ("snap-s1.qcow2", "snap-s2.qcow2"):
            # Both sides get a fresh copy of each layer, so neither has the better on-disk layout.
            await run("cp", "--sparse=always", str(layers / name), str(bare / name))
            await run("cp", "--sparse=always", str(layers / name), str(layers / f"{name}.copy"))
            (layers / f"{name}.copy").replace(layers / name)
        chain = await driver.describe_chain("vol")
        for side in ("bare", "plugin") if round_index % 2 == 0 else ("plugin", "bare"):
            if side == "bare":
                commit = run("qemu-img", "commit", "-q", "-d", "-f", "qcow2", str(bare / "snap-s2.qcow2"))
                bare_times.append(await timed(commit))
                continue
            plugin_times.append(await timed(driver.coalesce("vol")))
            # The plugin frees the merged child's old file in the background, as the bare run leaves its child for the
            # untimed clean-up: wait for it here, so it slows neither a bare run that follows nor the next round, and
            # report how long it took.
            started = time.perf_counter()
            await driver.close()
            release_times.append(time.perf_counter() - started)
        if len((await driver.describe_chain("vol")).links) != len(chain.links) - 1:
            raise SystemExit("coalesce did not merge the delta")
        shutil.rmtree(bare)
        shutil.rmtree(pool)
    overhead = statistics.median(plugin - bare for plugin, bare in zip(plugin_times, bare_times, strict=True))
    return min(bare_times), min(plugin_times), min(release_times), overhead


async def backup_figures(raw: Path, workdir: Path) -> tuple[float | None, float | None]:
    """(full backup MiB/s, incremental written/changed) from plugins-backup's bench, or nulls without it."""
    try:
        from bench.backup_figures import measure_backup
    except ImportError:
        return None, None
    full, ratio = await measure_backup(raw, workdir)
    return round(full, 1), round(ratio, 3)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    options = parser.parse_args()
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install qemu-utils")
    workdir = Path(tempfile.mkdtemp(prefix="strata-datapath-", dir=options.workdir))
    try:
        raw = workdir / "volume.raw"
        await asyncio.to_thread(make_volume, raw, options.size_mib)
        bare_copy, plugin_copy = await measure_copy(raw, workdir, options.rounds)
        coalesce_figures = await measure_coalesce(raw, workdir, options.size_mib, options.rounds)
        bare_commit, plugin_coalesce, plugin_release, coalesce_overhead = coalesce_figures
        backup_full, incremental_ratio = await backup_figures(raw, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "datapath",
                "volume_mib": options.size_mib,
                "copy_ratio_vs_qemu_img": round(plugin_copy / bare_copy, 3),
                "coalesce_ratio_vs_qemu_img": round(plugin_coalesce / bare_commit, 3),
                "backup_full_mib_per_s": backup_full,
                "incremental_written_ratio": incremental_ratio,
                "qemu_img_convert_s": round(bare_copy, 3),
                "plugin_copy_s": round(plugin_copy, 3),
                "qemu_img_commit_s": round(bare_commit, 3),
                "plugin_coalesce_s": round(plugin_coalesce, 3),
                "plugin_coalesce_release_s": round(plugin_release, 3),
                "plugin_coalesce_overhead_s": round(coalesce_overhead, 4),
                "delta_mib": options.size_mib // 4 // WRITE_MIB * WRITE_MIB,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
