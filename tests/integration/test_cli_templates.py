"""`strata image-store` and `strata template` as a user runs them (subprocesses) against the image service running
in this test's process, with a real HTTP server serving the images."""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from services.image.settings import ImageSettings
from services.runtime.daemon import Settings
from services.stack import System
from tests.image_http import ImageServer, image_server
from tests.integration.plugins_qcow2fs_support import require_qemu_tools

pytestmark = pytest.mark.integration
STRATA = str(Path(sys.executable).parent / "strata")


@pytest.fixture
async def strata_env(amqp_url: str, namespace: str, database_url: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The image service running; the environment that points `strata` at it."""
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="cli-test")
    system = await System.start(
        database_url,
        transport,
        settings=Settings(ImageSettings(staging_dir=tmp_path / "staging")),
        relay_poll=0.1,
        only=("image",),
    )
    env = dict(os.environ)
    env.update(STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, STRATA_DATABASE_URL=database_url, COLUMNS="200")
    try:
        yield env
    finally:
        await system.stop()
        await transport.delete_namespace()


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    async with image_server() as running:
        yield running


async def strata(env: dict[str, str], *args: str, stdout_only: bool = False) -> tuple[int, str]:
    """Run `strata ARGS`; return its exit status and its output (stdout then stderr, or stdout only)."""
    process = await asyncio.create_subprocess_exec(
        STRATA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + ("" if stdout_only else err.decode())


def qcow2(directory: Path) -> Path:
    require_qemu_tools()
    raw = directory / "image.raw"
    raw.write_bytes(os.urandom(1 << 20) + bytes(1 << 20))
    target = directory / "image.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(target)], check=True)
    return target


async def test_register_list_show_delete_a_template(
    strata_env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    store = tmp_path / "secondary"
    store.mkdir()
    code, out = await strata(
        strata_env, "image-store", "add", "secondary", "--plugin", "fsbackup", "-c", f"path={store}"
    )
    assert code == 0, out
    code, out = await strata(strata_env, "image-store", "list", "--json")
    assert code == 0, out
    assert [entry["name"] for entry in json.loads(out)] == ["secondary"]

    image = qcow2(tmp_path)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    url = server.add("debian.qcow2", image)
    code, out = await strata(
        strata_env, "template", "register", "debian", "--url", url, "--checksum", f"{{SHA-256}}{digest}"
    )
    assert code == 0, out
    assert "DOWNLOADED" in out
    code, out = await strata(strata_env, "template", "register", "broken", "--url", url, "--checksum", "0" * 32)
    assert code == 1, out
    assert "DOWNLOAD_ERROR" in out
    assert "checksum check" in out

    other = tmp_path / "secondary-b"
    other.mkdir()
    code, out = await strata(
        strata_env,
        "image-store",
        "add",
        "secondary-b",
        "--zone",
        "zone-b",
        "--plugin",
        "fsbackup",
        "-c",
        f"path={other}",
    )
    assert code == 0, out
    code, out = await strata(strata_env, "template", "copy", "debian", "--to-zone", "zone-b")
    assert code == 0, out
    assert f"sha256:{digest} verified" in out
    code, out = await strata(strata_env, "template", "list", "--zone", "zone-b", "--json")
    assert code == 0, out
    assert [entry["name"] for entry in json.loads(out)] == ["debian"]
    code, out = await strata(strata_env, "image-store", "remove", "secondary-b")
    assert code == 1, out

    code, out = await strata(strata_env, "template", "list", "--json")
    assert code == 0, out
    states = {entry["name"]: [copy["state"] for copy in entry["copies"]] for entry in json.loads(out)}
    assert states == {"debian": ["DOWNLOADED", "DOWNLOADED"], "broken": ["DOWNLOAD_ERROR"]}
    code, out = await strata(strata_env, "template", "show", "debian", "--json")
    assert code == 0, out
    assert json.loads(out)["copies"][0]["checksum"] == f"sha256:{digest}"

    # Export: the image service reads it from a store and PUTs it to this command's one-shot receiver.
    exported = tmp_path / "exported.qcow2"
    code, out = await strata(strata_env, "template", "export", "debian", "--file", str(exported))
    assert code == 0, out
    assert f"sha256:{digest}" in out
    assert hashlib.sha256(await asyncio.to_thread(exported.read_bytes)).hexdigest() == digest
    code, out = await strata(strata_env, "template", "export", "debian", "--file", str(exported))
    assert code == 1, out
    assert "exists" in out  # nothing is overwritten
    code, out = await strata(strata_env, "template", "export", "debian", "--url", "http://127.0.0.1:9/nowhere")
    assert code == 1, out
    assert "sending to the receiver failed" in out  # tried again, then given up with the reason
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("*.partial")))

    code, out = await strata(strata_env, "image-store", "remove", "secondary")
    assert code == 1, out
    assert "debian" in out, "removing a store that holds images names them"
    for name in ("debian", "broken"):
        code, out = await strata(strata_env, "template", "delete", name)
        assert code == 0, out
    code, out = await strata(strata_env, "template", "show", "debian")
    assert code == 1, out
    for store_name in ("secondary", "secondary-b"):
        code, out = await strata(strata_env, "image-store", "remove", store_name)
        assert code == 0, out


async def test_bad_input_is_refused_before_anything_is_sent(strata_env: dict[str, str]) -> None:
    code, out = await strata(strata_env, "template", "register", "x", "--url", "ftp://host/x.qcow2")
    assert code == 1, out
    assert "url" in out
    code, out = await strata(
        strata_env, "template", "register", "x", "--url", "http://h/x", "--checksum", "{SHA-256}12"
    )
    assert code == 1, out
    assert "checksum" in out
    code, out = await strata(strata_env, "image-store", "add", "s", "--plugin", "qcow2fs", "-c", "path=/tmp")
    assert code == 1, out
    assert "image" in out


async def test_upload_streams_a_local_file_to_the_stores(strata_env: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "secondary"
    store.mkdir()
    code, out = await strata(
        strata_env, "image-store", "add", "secondary", "--plugin", "fsbackup", "-c", f"path={store}"
    )
    assert code == 0, out
    image = qcow2(tmp_path)
    code, out = await strata(strata_env, "template", "upload", "uploaded", str(image), "--json", stdout_only=True)
    assert code == 0, out
    downloads = json.loads(out)["downloads"]
    assert [download["checksum"] for download in downloads] == [
        f"sha256:{hashlib.sha256(image.read_bytes()).hexdigest()}"
    ]
    iso = tmp_path / "installer.iso"
    iso.write_bytes(os.urandom(1 << 20))
    code, out = await strata(strata_env, "iso", "upload", "installer", str(iso))
    assert code == 0, out
    assert "DOWNLOADED" in out
    code, out = await strata(strata_env, "iso", "list", "--json")
    assert [entry["name"] for entry in json.loads(out)] == ["installer"]
