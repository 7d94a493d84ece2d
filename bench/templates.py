"""Template figures through the running services, with baselines from the same run.

    python bench/templates.py [--size-mib 1024] [--volumes 5] [--workdir DIR]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)

prints one JSON line: {"bench": "templates", "linked_clone_ratio_vs_empty": ..., "first_volume_ratio_vs_qemu_img":
..., "download_ratio_vs_curl": ..., ...}

A template of random bytes (`--size-mib`, qcow2 made by qemu-img) is served by a separate HTTP server process. The
storage, image and agent daemons run in this process on RabbitMQ and PostgreSQL (a database and a namespace of the
bench's own). Timed, each as the CLI waits for it (command sent -> outcome event):
- `empty_volume_ms`: an empty volume's creation (median of `--volumes`), the baseline of
- `linked_clone_ms`: a volume from the cached template (median; target ratio <= 2);
- `first_volume_ms`: the first volume from the template, which makes the pool's base copy from the image store,
  against `qemu_img_convert_ms`, `qemu-img convert` of the template into the pool's directory, flushed (`-t
  writeback`) as the base copy is before it is recorded ready (target <= 1.2);
- `download_mib_per_s`: the image service's download (resumable, hashed) of the template's URL into a file,
  against `curl_mib_per_s`, curl of the same URL into a file (best of 3 each, interleaved; target ratio >= 0.8).
"""

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.system_support import CLUSTER, HOST, MIB, make_random_raw, run, running_system, seconds, send
from schemas.image import (
    AddImageStore,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageStoreAdded,
    ImageStoreAddFailed,
    RegisterImage,
)
from schemas.storage import (
    AddPool,
    CreateVolume,
    PoolAdded,
    PoolAddFailed,
    PoolScope,
    VolumeCreated,
    VolumeCreateFailed,
)
from services.image.download import download

ZONE = uuid.UUID("00000000-0000-4000-8000-0000000000be")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def http_server(directory: Path) -> tuple[asyncio.subprocess.Process, int]:
    """A plain HTTP server in a process of its own (Python's http.server), so that it takes no time from ours."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return process, port
    raise SystemExit("the HTTP server did not start")


async def download_figures(url: str, size_bytes: int, workdir: Path) -> dict[str, float]:
    """Best of 3 each, interleaved: the image service's download against curl, both into a file."""
    ours, curls = [], []
    target = workdir / "downloaded"
    for _ in range(3):
        target.unlink(missing_ok=True)
        ours.append(
            await seconds(
                lambda: download(
                    url,
                    target,
                    algorithms={"sha256"},
                    max_bytes=size_bytes * 2,
                    stall_seconds=60.0,
                    progress=lambda *_: None,
                )
            )
        )
        target.unlink(missing_ok=True)
        curls.append(await seconds(lambda: run("curl", "-sf", "-o", str(target), url)))
    target.unlink(missing_ok=True)
    mib = size_bytes / MIB
    return {"download_mib_per_s": mib / min(ours), "curl_mib_per_s": mib / min(curls)}


async def system_figures(url: str, template: Path, size_mib: int, volumes: int, workdir: Path) -> dict[str, float]:
    """The volume figures through the storage, image and agent daemons."""
    async with running_system(workdir, ("storage", "image", "agent")) as client:
        pool_dir, store_dir = workdir / "pool", workdir / "store"
        pool_dir.mkdir()
        store_dir.mkdir()
        await send(
            client,
            AddPool(
                pool_id=uuid.uuid4(),
                name="bench",
                plugin="qcow2fs",
                config={"path": str(pool_dir)},
                scope=PoolScope.HOST,
                cluster_id=CLUSTER,
                host=HOST,
                zone_id=ZONE,
            ),
            PoolAdded,
            PoolAddFailed,
        )
        await send(
            client,
            AddImageStore(
                store_id=uuid.uuid4(),
                name="bench",
                zone_id=ZONE,
                plugin="fsbackup",
                config={"path": str(store_dir)},
            ),
            ImageStoreAdded,
            ImageStoreAddFailed,
        )
        template_id = uuid.uuid4()
        await send(
            client,
            RegisterImage(image_id=template_id, name="bench", format=ImageFormat.QCOW2, zone_id=ZONE, url=url),
            ImageDownloaded,
            ImageDownloadFailed,
        )

        def volume(template_id: uuid.UUID | None) -> Callable[[], Awaitable[object]]:
            command = CreateVolume(
                volume_id=uuid.uuid4(),
                name=f"v{uuid.uuid4().hex[:6]}",
                size_bytes=size_mib * MIB,
                zone_id=ZONE,
                host=HOST,
                template_id=template_id,
            )
            return lambda: send(client, command, VolumeCreated, VolumeCreateFailed)

        await seconds(volume(None))  # warm-up: the first command of each kind pays for connections and caches
        first = await seconds(volume(template_id))
        baseline = await seconds(
            lambda: run(
                "qemu-img",
                "convert",
                "-W",
                "-t",
                "writeback",
                "-O",
                "qcow2",
                str(template),
                str(pool_dir / "baseline.qcow2"),
            )
        )
        empty, linked = [], []
        for _ in range(volumes):
            empty.append(await seconds(volume(None)))
            linked.append(await seconds(volume(template_id)))
    return {
        "empty_volume_ms": statistics.median(empty) * 1000,
        "linked_clone_ms": statistics.median(linked) * 1000,
        "first_volume_ms": first * 1000,
        "qemu_img_convert_ms": baseline * 1000,
    }


async def main(size_mib: int, volumes: int, workdir: Path) -> dict[str, object]:
    raw = workdir / "template.raw"
    await asyncio.to_thread(make_random_raw, raw, size_mib)
    served = workdir / "served"
    served.mkdir()
    template = served / "template.qcow2"
    await run("qemu-img", "convert", "-O", "qcow2", str(raw), str(template))
    raw.unlink()
    server, port = await http_server(served)
    url = f"http://127.0.0.1:{port}/template.qcow2"
    try:
        figures = await download_figures(url, template.stat().st_size, workdir)
        figures |= await system_figures(url, template, size_mib, volumes, workdir)
    finally:
        server.terminate()
        await server.wait()
    return {
        "bench": "templates",
        "template_mib": size_mib,
        "volumes": volumes,
        **{key: round(value, 1) for key, value in figures.items()},
        "linked_clone_ratio_vs_empty": round(figures["linked_clone_ms"] / figures["empty_volume_ms"], 2),
        "first_volume_ratio_vs_qemu_img": round(figures["first_volume_ms"] / figures["qemu_img_convert_ms"], 2),
        "download_ratio_vs_curl": round(figures["download_mib_per_s"] / figures["curl_mib_per_s"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--volumes", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-templates-", dir=arguments.workdir))
    try:
        print(json.dumps(asyncio.run(main(arguments.size_mib, arguments.volumes, workdir))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
