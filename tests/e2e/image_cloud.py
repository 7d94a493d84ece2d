"""What the image e2e tests share: the storage, image and agent daemons, each a process of its own (`strata run`, or
`tests.e2e.killable_daemons` for one told to SIGKILL itself at a plugin fault point), on the test's database and
namespace; `strata` run as an operator types it; qcow2 templates made by qemu-img; the contents compared by SHA-256.

    async def test_it(cloud: ImageCloud) -> None:  # the `cloud` fixture: `image_cloud` on the test's servers
        await cloud.start("storage"); await cloud.start("image"); await cloud.start("agent", kill_at=[POINT])
        await cloud.add_pool("pool-a"); await cloud.add_store("store-a")
        await cloud.register("debian", template); await cloud.volume_from("vm-1", SIZE, "debian")
        await settled(cloud, pool)  # nothing in progress, nothing in staging

An image store on S3 behind a proxy that holds a transfer in its middle: `tests.e2e.image_s3`.
"""

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.daemon_processes import CLUSTER, HOST, DaemonProcess, daemon_env, remove_namespace
from tests.helpers import assert_eventually

KILLABLE = (sys.executable, "-m", "tests.e2e.killable_daemons")
STRATA = str(Path(sys.executable).parent / "strata")
MIB = 1 << 20
PLACEMENT = ("--host", HOST, "--cluster", CLUSTER)


@dataclass
class ImageCloud:
    """The test's daemons (by kind, the latest of each; every one started, for the clean-up) and servers."""

    env: dict[str, str]
    database_url: str
    root: Path
    daemons: dict[str, DaemonProcess] = field(default_factory=dict)
    started: list[DaemonProcess] = field(default_factory=list)

    @property
    def staging(self) -> Path:
        """The image service's staging directory (`STRATA_IMAGE_STAGING_DIR`)."""
        return self.root / "image-staging"

    @property
    def agent_staging(self) -> Path:
        """Where the agent of HOST keeps its copies' staging directories (under its TMPDIR)."""
        return self.root / "tmp" / f"strata-copy-{HOST}"

    async def start(self, kind: str, *, kill_at: Sequence[str] = ()) -> DaemonProcess:
        """Start the daemon `kind`; with `kill_at`, one that SIGKILLs itself the first time it reaches one of those
        fault points."""
        if kill_at:
            env = {**self.env, "STRATA_E2E_KILL_AT": json.dumps(list(kill_at))}
            process = await DaemonProcess.start(env, kind, program=KILLABLE)
        else:
            process = await DaemonProcess.start(self.env, "run", kind)
        self.daemons[kind] = process
        self.started.append(process)
        return process

    async def killed_itself(self, kind: str, timeout: float = 120.0) -> None:
        """Wait until the daemon `kind` died of its own SIGKILL (at its fault point)."""
        process = self.daemons[kind].process
        try:
            code = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{kind} never reached its fault point:\n{self.daemons[kind].show_log()}") from None
        assert code == -signal.SIGKILL, f"{kind} exited with {code}:\n{self.daemons[kind].show_log()}"

    async def run_strata(self, *args: str) -> tuple[int, str, str]:
        """Run `strata ARGS` as an operator does; its exit status, stdout and stderr."""
        process = await asyncio.create_subprocess_exec(
            STRATA, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=700)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def strata(self, *args: str, expect: int = 0) -> str:
        """`strata ARGS`: its output (stdout, then stderr); fail unless it exits `expect`."""
        code, out, err = await self.run_strata(*args)
        assert code == expect, f"`strata {' '.join(args)}` exited {code}: {out}{err}"
        return out + err

    async def strata_json(self, *args: str) -> Any:  # Any: the command's JSON output
        code, out, err = await self.run_strata(*args, "--json")
        assert code == 0, f"`strata {' '.join(args)} --json` exited {code}: {out}{err}"
        return json.loads(out)

    async def rows(self, query: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a query on the test's database."""
        connection = await asyncpg.connect(self.database_url)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def nothing_in_progress(self) -> None:
        """No image copy, volume or agent operation is left half done: every copy DOWNLOADED, every volume Ready
        (or gone), every agent operation finished (of the services this test runs: their tables exist)."""
        checks = {
            "image.copies": "SELECT image_id, store_id, state FROM image.copies WHERE state <> 'DOWNLOADED'",
            "storage.volumes": "SELECT volume_id, name, state FROM storage.volumes "
            "WHERE state NOT IN ('Ready', 'Expunged')",
            "agent.operations": "SELECT command_type, state FROM agent.operations WHERE state = 'running'",
        }
        for table, query in checks.items():
            if (await self.rows("SELECT to_regclass($1) AS found", table))[0]["found"] is not None:
                left = await self.rows(query)
                assert left == [], f"in progress in {table}: {left}"

    async def add_pool(self, name: str, zone: str = "default") -> Path:
        """A host-scoped qcow2fs pool of HOST in `zone`, on a directory of its own; the directory."""
        path = self.root / name
        path.mkdir()
        await self.strata_json(
            "pool", "add", name, "--plugin", "qcow2fs", "-c", f"path={path}", "--zone", zone, *PLACEMENT
        )
        return path

    async def add_store(self, name: str, zone: str = "default") -> Path:
        """An fsbackup image store in `zone` on a directory of its own; the directory."""
        path = self.root / name
        path.mkdir()
        await self.strata("image-store", "add", name, "--plugin", "fsbackup", "-c", f"path={path}", "--zone", zone)
        return path

    async def register(self, name: str, template: Path) -> dict[str, Any]:
        """`strata template register NAME` from a URL of an HTTP server of the test's, with its SHA-256; the JSON."""
        from tests.image_http import image_server

        async with image_server() as server:
            url = server.add(f"{name}.qcow2", template)
            checksum = f"{{SHA-256}}{await asyncio.to_thread(sha256_of, template)}"
            registered: dict[str, Any] = await self.strata_json(
                "template", "register", name, "--url", url, "--checksum", checksum
            )
        return registered

    async def volume_from(self, name: str, size: int, template: str, *more: str) -> dict[str, Any]:
        """`strata volume create NAME SIZE --template T` (placed on HOST); the volume as `volume show` gives it."""
        await self.strata_json(
            "volume", "create", name, str(size), "--template", template, *PLACEMENT, *more, "--timeout", "600"
        )
        shown: dict[str, Any] = await self.strata_json("volume", "show", name)
        return shown


@asynccontextmanager
async def image_cloud(database_url: str, amqp_url: str, namespace: str, root: Path) -> AsyncIterator[ImageCloud]:
    """The environment of the test's daemons; at the end every daemon it started is stopped (SIGTERM, which must
    succeed, or SIGKILL for one already dead) and the namespace's queues and exchanges deleted."""
    (root / "tmp").mkdir()
    env = daemon_env(
        database_url,
        amqp_url,
        namespace,
        TMPDIR=str(root / "tmp"),
        STRATA_IMAGE_STAGING_DIR=str(root / "image-staging"),
        STRATA_IMAGE_LEASE_SECONDS="2",
        COLUMNS="200",
    )
    cloud = ImageCloud(env, database_url, root)
    try:
        yield cloud
    finally:
        exits = []
        for process in reversed(cloud.started):
            if process.process.returncode is None:
                exits.append((await process.terminate(), process))
            else:
                await process.kill()
        await remove_namespace(amqp_url, namespace)
        for code, process in exits:
            assert code == 0, process.show_log()


@pytest.fixture(name="cloud")
async def cloud_fixture(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ImageCloud]:
    """An image cloud on the test's database and namespace, its files under `tmp_path`; no daemon started yet."""
    async with image_cloud(database_url, amqp_url, namespace, tmp_path) as opened:
        yield opened


async def run(*args: str) -> str:
    """Run a tool (qemu-img, qemu-io); its output; fail with it if the tool fails."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, f"{' '.join(args)} failed: {out.decode(errors='replace')}"
    return out.decode(errors="replace")


async def make_template(directory: Path, data_mib: int, size_mib: int) -> Path:
    """A qcow2 made by qemu-img of `size_mib` MiB whose first `data_mib` MiB are random (the rest reads as zeros)."""
    raw = directory / "template-source.raw"
    with raw.open("wb") as out:  # a test's set-up: a few MiB
        out.write(os.urandom(data_mib * MIB))
        out.truncate(size_mib * MIB)
    template = directory / "template.qcow2"
    await run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(template))
    raw.unlink()
    return template


def files_under(directory: Path) -> list[Path]:
    """The files below `directory` (none if it does not exist)."""
    return sorted(path for path in directory.rglob("*") if path.is_file())


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(4 * MIB):
            digest.update(piece)
    return digest.hexdigest()


async def content_sha256(image: str | Path, scratch: Path) -> str:
    """The SHA-256 of an image's guest-visible content (its chain read through by `qemu-img convert -O raw`)."""
    target = scratch / f"content-{Path(image).parent.name}-{Path(image).name}.raw"
    await run("qemu-img", "convert", "-U", "-O", "raw", str(image), str(target))
    try:
        return await asyncio.to_thread(sha256_of, target)
    finally:
        target.unlink()


async def stored_sha256(store: Path, image_id: str, scratch: Path) -> str:
    """The SHA-256 of the image as an fsbackup store holds it (read back through the plugin, chunks verified)."""
    from plugins.fsbackup import FsBackupConfig
    from plugins.fsbackup.driver import open_driver

    driver = open_driver(FsBackupConfig(path=str(store)))
    target = scratch / f"stored-{image_id}"
    try:
        await driver.get_image(image_id, target)
        return await asyncio.to_thread(sha256_of, target)
    finally:
        await driver.close()
        target.unlink(missing_ok=True)


async def stored_images(store: Path) -> list[str]:
    """The ids of the images an fsbackup store holds."""
    from plugins.fsbackup import FsBackupConfig
    from plugins.fsbackup.driver import open_driver

    driver = open_driver(FsBackupConfig(path=str(store)))
    try:
        return [image.image_id for image in await driver.list_images()]
    finally:
        await driver.close()


async def settled(cloud: ImageCloud, *pools: Path) -> None:
    """Wait until nothing is left in progress (see `ImageCloud.nothing_in_progress`); then no staging file is left
    (the image service's, the agent's in its temporary directory and on each pool: qcow2fs adopts a base copy staged
    on its own filesystem), no dead agent's staging directory, no half-made file on a pool."""

    async def quiet() -> bool:
        try:
            await cloud.nothing_in_progress()
        except AssertionError:
            return False
        return True

    await assert_eventually(quiet, timeout=60.0, what="nothing left in progress")
    await cloud.nothing_in_progress()
    assert files_under(cloud.staging) == [], "the image service left staging files"
    assert files_under(cloud.agent_staging) == [], "the agent left staging files"
    for pool in pools:
        staged = pool / "staging" / f"strata-copy-{HOST}"
        assert files_under(staged) == [], f"the agent left staging files on {pool.name}"
        if staged.is_dir():
            live = [str(process.process.pid) for process in cloud.started if process.process.returncode is None]
            dead = [entry.name for entry in staged.iterdir() if entry.name not in live]
            assert dead == [], f"dead agents' staging directories stayed on {pool.name}"
        assert [path for path in files_under(pool) if path.name.endswith(".tmp")] == [], "a half-made file stayed"
