"""The demo's template chapter: an image store in the demo's zone, a small qcow2 template registered from a URL
served by the demo itself, downloaded and checked by the image service; the VM's root volume is then made from it.
"""

import asyncio
import hashlib
import uuid
from pathlib import Path

from rich.console import Console

from plugins.qcow2fs.qemu_img import QemuImg
from schemas.image import (
    AddImageStore,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageStoreAdded,
    ImageStoreAddFailed,
    RegisterImage,
)
from services.cli.file_server import serve_file
from services.cli.sending import Client

TEMPLATE_DATA = 1 << 20  # bytes of data at the start of the template (the rest of its disk is empty)
STEP_TIMEOUT = 60.0


def _write_raw(path: Path, size_bytes: int) -> None:
    line = b"strata demo template\n"
    with path.open("wb") as raw:
        raw.write(line * (TEMPLATE_DATA // len(line)))
        raw.truncate(size_bytes)


async def make_template(workdir: Path, size_bytes: int) -> Path:
    """A qcow2 template made by qemu-img: a recognisable first MiB, the rest of its `size_bytes` disk empty."""
    raw = workdir / "template.raw"
    await asyncio.to_thread(_write_raw, raw, size_bytes)
    template = workdir / "demo-template.qcow2"
    await QemuImg().run("convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(template))
    return template


async def register_template(
    console: Console, client: Client, *, zone_id: uuid.UUID, workdir: Path, size_bytes: int
) -> uuid.UUID:
    """Add an image store to the zone and register a template into it from a local URL; return its id."""
    store_dir = workdir / "image-store"
    await asyncio.to_thread(store_dir.mkdir)
    await client.send(
        AddImageStore(
            store_id=uuid.uuid4(),
            name="demo-images",
            zone_id=zone_id,
            plugin="fsbackup",
            config={"path": str(store_dir)},
        ),
        (ImageStoreAdded,),
        (ImageStoreAddFailed,),
        timeout=STEP_TIMEOUT,
    )
    template = await make_template(workdir, size_bytes)
    digest = hashlib.sha256(await asyncio.to_thread(template.read_bytes)).hexdigest()
    template_id = uuid.uuid4()
    async with serve_file(template) as url:
        downloaded = await client.send(
            RegisterImage(
                image_id=template_id,
                name="demo-template",
                format=ImageFormat.QCOW2,
                zone_id=zone_id,
                url=url,
                checksum=f"{{SHA-256}}{digest}",
            ),
            (ImageDownloaded,),
            (ImageDownloadFailed,),
            timeout=STEP_TIMEOUT,
        )
    assert isinstance(downloaded, ImageDownloaded)
    console.print(
        f"[green]✓[/green] template demo-template registered from {url}: DOWNLOADED to image store demo-images "
        f"(checksum {downloaded.checksum[:19]}…, format checked by qemu-img)"
    )
    return template_id
