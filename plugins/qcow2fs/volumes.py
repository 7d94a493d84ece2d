"""Volumes: create (sparse or from a template), clone, copy in and out, resize, delete.

Every volume is made the same way, so that a retry after a crash converges: the request is recorded first
(`volume.json`, state `creating`), the image is built under a temporary name, renamed to `active.qcow2`, and the
record is marked `ready`. The same request again returns the volume (or redoes the build a crash interrupted);
a different request for the same id raises `AlreadyExists`. A build that fails for good (no such source, no room)
leaves nothing behind, so the id can be used again.
"""

import asyncio
import contextlib
import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from plugins.qcow2fs.context import PoolContext, now
from plugins.qcow2fs.layout import read_record, sync_dir, write_record
from plugins.qcow2fs.qemu_img import convert_args, read_header
from plugins.sdk import faults
from plugins.sdk.errors import Aborted, AlreadyExists, InvalidArgument, NotFound, StrataError, Transient
from plugins.sdk.progress import ProgressCallback, fraction_to_bytes, no_progress
from plugins.sdk.types import TemplateMode, Volume, VolumeFormat

Build = Callable[[Path], Awaitable[None]]
"""Writes the new volume's image at the given temporary path."""


async def make_volume(context: PoolContext, volume_id: str, request: dict[str, object], build: Build) -> Volume:
    """Create `volume_id` by `build`, idempotently on the (volume_id, request) pair."""
    async with context.lock(volume_id):
        record = await context.off_loop(read_record, context.layout.volume_record(volume_id))
        if record is not None:
            if record["state"] == "ready":
                if record["request"] != request:
                    raise AlreadyExists(
                        f"volume {volume_id!r} exists and was made by another request", field="volume_id"
                    )
                return await context.describe_volume(volume_id)
            if record["request"] != request:
                # A build that died before publishing made no volume: a retry whose source is staged anew (another
                # temporary file for the same copy) takes it over instead of meeting a volume nobody can see.
                record = {**record, "request": request}
                await context.off_loop(write_record, context.layout.volume_record(volume_id), record)
        else:
            await context.require_placeable()
            fresh = {"volume_id": volume_id, "request": request, "state": "creating", "created_at": now()}
            await context.off_loop(write_record, context.layout.volume_record(volume_id), fresh)
            record = fresh
        active = context.layout.active(volume_id)
        temporary = active.with_name(".active.qcow2.tmp")
        await context.off_loop(temporary.unlink, True)
        try:
            await build(temporary)
        except (Transient, Aborted):
            raise  # worth a retry of the same request: the record stays for it
        except StrataError:
            # A definite failure (no such source, a bad argument, no room): nothing of the volume is kept, so that
            # the id is free for a corrected request. A crash raises no error here and leaves the record for a retry.
            await context.off_loop(_delete_volume_files, context, volume_id)
            raise
        await faults.point("qcow2fs.volume.before_publish")
        await context.off_loop(_publish, temporary, active)
        await context.off_loop(write_record, context.layout.volume_record(volume_id), {**record, "state": "ready"})
        return await context.describe_volume(volume_id)


def _publish(temporary: Path, active: Path) -> None:
    temporary.replace(active)
    sync_dir(active.parent)


def check_size(size_bytes: int) -> None:
    if size_bytes <= 0 or size_bytes % 512:
        raise InvalidArgument("size_bytes must be a positive multiple of 512", field="size_bytes")


async def create_volume(
    context: PoolContext, volume_id: str, size_bytes: int, template: Path | None, template_mode: TemplateMode
) -> Volume:
    """A sparse volume, or one on a template (as its backing file, or as a full copy grown to `size_bytes`)."""
    check_size(size_bytes)
    request: dict[str, object] = {"op": "create", "size_bytes": size_bytes}
    if template is None:

        async def build(target: Path) -> None:
            await context.qemu.run("create", "-q", "-f", "qcow2", str(target), str(size_bytes))

        return await make_volume(context, volume_id, request, build)

    if not template.is_absolute():
        raise InvalidArgument("template must be an absolute path", field="template")
    request |= {"template": str(template), "template_mode": template_mode.value}
    info = (await context.qemu.info(template))[0]
    template_format, template_size = str(info["format"]), int(str(info["virtual-size"]))
    if size_bytes < template_size:
        raise InvalidArgument(
            f"size_bytes {size_bytes} is smaller than the template's {template_size}", field="size_bytes"
        )

    async def build_from_template(target: Path) -> None:
        if template_mode is TemplateMode.BACKING:
            await context.qemu.run(
                "create", "-q", "-f", "qcow2", "-b", str(template), "-F", template_format, str(target), str(size_bytes)
            )
            return
        await context.qemu.run(*convert_args(template, target, source_format=template_format, target_format="qcow2"))
        if size_bytes > template_size:
            await context.qemu.run("resize", "-q", "-f", "qcow2", str(target), str(size_bytes))

    return await make_volume(context, volume_id, request, build_from_template)


async def clone_volume(context: PoolContext, volume_id: str, source_volume_id: str) -> Volume:
    """A standalone copy of the source's current content (its whole chain flattened)."""
    if volume_id == source_volume_id:
        raise InvalidArgument("a volume cannot be cloned onto itself", field="volume_id")
    await context.volume_record(source_volume_id)
    source = context.layout.active(source_volume_id)

    async def build(target: Path) -> None:
        async with context.lock(source_volume_id):
            await context.qemu.run(*convert_args(source, target, source_format="qcow2", target_format="qcow2"))

    return await make_volume(context, volume_id, {"op": "clone", "source_volume_id": source_volume_id}, build)


async def copy_in(
    context: PoolContext,
    volume_id: str,
    source: Path,
    source_format: VolumeFormat | None,
    progress: ProgressCallback | None,
) -> Volume:
    """A volume made from a file's bytes by `qemu-img convert`, with progress."""
    if not source.is_absolute():
        raise InvalidArgument("source must be an absolute path", field="source")
    request: dict[str, object] = {
        "op": "copy_in",
        "source": str(source),
        "source_format": source_format.value if source_format else None,
    }
    report = progress or no_progress

    async def build(target: Path) -> None:
        total = await context.off_loop(_size_of_known_source, source, source_format)
        if source_format is not None and total is not None:
            fmt = source_format.value
        else:
            info = (await context.qemu.info(source))[0]
            total = int(str(info["virtual-size"]))
            fmt = source_format.value if source_format else str(info["format"])
        args = convert_args(source, target, source_format=fmt, target_format="qcow2")
        await context.qemu.run(*args, on_percent=fraction_to_bytes(report, total))
        report(total, total)

    return await make_volume(context, volume_id, request, build)


def _size_of_known_source(source: Path, source_format: VolumeFormat | None) -> int | None:
    """The virtual size of a regular file in the format the caller named, read without a `qemu-img info` process
    (blocking); None when only qemu-img can tell (no format given, or a block device, whose st_size is 0)."""
    try:
        status = source.stat()
    except FileNotFoundError:
        raise NotFound(f"{source} does not exist", field="source") from None
    if source_format is None or not stat.S_ISREG(status.st_mode):
        return None
    if source_format is VolumeFormat.RAW:
        return status.st_size
    return read_header(source).size_bytes


async def adopt(context: PoolContext, volume_id: str, source: Path, source_format: VolumeFormat) -> Volume:
    """A volume made of a staged qcow2 file by renaming it into place (no copy), once `qemu-img info` shows it is
    a standalone qcow2 (no backing or data file); it is fsynced first, as a convert's output is."""
    staging = context.layout.staging
    if source_format is not VolumeFormat.QCOW2:
        raise InvalidArgument(f"qcow2fs adopts qcow2 files only, not {source_format.value}", field="source_format")
    if not source.is_absolute() or source.parent == staging or staging not in source.parents:
        raise InvalidArgument(f"{source} is not a file staged under {staging}/<directory>/", field="source")
    request: dict[str, object] = {"op": "adopt", "source": str(source)}

    async def build(target: Path) -> None:
        if not await context.off_loop(source.is_file):
            raise NotFound(f"staged file {source} does not exist", field="source")
        info = (await context.qemu.info(source))[0]
        specific = info.get("format-specific")
        data = specific.get("data") if isinstance(specific, dict) else None
        if info.get("format") != "qcow2":
            raise InvalidArgument(f"{source.name} is {info.get('format')}, not qcow2", field="source_format")
        if info.get("backing-filename") or (isinstance(data, dict) and data.get("data-file")):
            raise InvalidArgument(f"{source.name} depends on another file: it cannot be adopted", field="source")
        await context.off_loop(_fsync_and_move, source, target)

    return await make_volume(context, volume_id, request, build)


def _fsync_and_move(source: Path, target: Path) -> None:
    with source.open("rb") as staged:
        os.fsync(staged.fileno())
    source.replace(target)


async def copy_out(
    context: PoolContext,
    volume_id: str,
    target: Path,
    target_format: VolumeFormat,
    progress: ProgressCallback | None,
) -> None:
    """Write the volume's content to `target` (a temporary name first, renamed when complete)."""
    if not target.is_absolute():
        raise InvalidArgument("target must be an absolute path", field="target")
    volume = await context.describe_volume(volume_id)
    async with context.lock(volume_id):
        await convert_out(
            context, Path(volume.path), volume.size_bytes, target, target_format=target_format, progress=progress
        )


async def convert_out(
    context: PoolContext,
    source: Path,
    size_bytes: int,
    target: Path,
    *,
    target_format: VolumeFormat,
    progress: ProgressCallback | None,
) -> None:
    """`qemu-img convert` of a qcow2 layer (its backing chain read through) to `target`, by a temporary name."""
    report = progress or no_progress
    partial = target.with_name(f".{target.name}.partial")
    await context.off_loop(partial.unlink, True)
    args = convert_args(source, partial, source_format="qcow2", target_format=target_format.value, durable=False)
    try:
        await context.qemu.run(*args, on_percent=fraction_to_bytes(report, size_bytes))
        await context.off_loop(partial.replace, target)
    except BaseException:
        # A failed or cancelled copy (a deadline), even just before the rename, leaves no partial file: its
        # qemu-img is already reaped.
        await asyncio.shield(context.off_loop(partial.unlink, True))
        raise
    report(size_bytes, size_bytes)


async def resize_volume(context: PoolContext, volume_id: str, size_bytes: int) -> Volume:
    """Grow the active layer; the same size is a no-op; shrinking is refused (it would destroy guest data)."""
    check_size(size_bytes)
    async with context.lock(volume_id):
        await context.volume_record(volume_id)
        await context.require_changeable()
        active = context.layout.active(volume_id)
        current = (await context.off_loop(read_header, active)).size_bytes
        if size_bytes < current:
            raise InvalidArgument(f"volumes only grow: {size_bytes} < current {current}", field="size_bytes")
        if size_bytes > current:
            await context.qemu.run("resize", "-q", "-f", "qcow2", str(active), str(size_bytes))
        return await context.describe_volume(volume_id)


async def delete_volume(context: PoolContext, volume_id: str) -> None:
    """Delete the volume's images and snapshot records; the record goes last so a crash leaves it retryable."""
    async with context.lock(volume_id):
        directory = context.layout.volume_dir(volume_id)
        if not await context.off_loop(directory.exists):
            return
        await context.require_changeable()
        # A coalesce may still hold a replaced layer: on NFS that is a silly-renamed `.nfs*` file in the directory,
        # which cannot be removed until it is released.
        await context.settle()
        for held in await context.off_loop(_delete_volume_files, context, volume_id):
            context.release_later(held)


def _delete_volume_files(context: PoolContext, volume_id: str) -> list[int]:
    """Remove the volume's files; return a descriptor held on each unlinked image. Their blocks are freed when the
    descriptors close (`release_later`): on a filesystem with online discard, freeing a written GiB takes about half
    a second here, which the delete need not wait for (the volume is gone once its names are)."""
    directory = context.layout.volume_dir(volume_id)
    if context.layout.snapshots.exists():
        for record_path in context.layout.snapshots.glob("*.json"):
            record = read_record(record_path)
            if record is not None and record.get("volume_id") == volume_id:
                record_path.unlink(missing_ok=True)
    held: list[int] = []
    try:
        for image in directory.glob("*.qcow2*"):
            with contextlib.suppress(OSError):  # gone already, or unreadable: unlinked all the same, freed there
                held.append(os.open(image, os.O_RDONLY))
            image.unlink(missing_ok=True)
        for hidden in directory.glob(".*.tmp"):
            hidden.unlink(missing_ok=True)
        context.layout.volume_record(volume_id).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        sync_dir(directory.parent)
    except BaseException:
        for descriptor in held:
            os.close(descriptor)  # the space is freed now, and the error said
        raise
    return held


async def list_volumes(context: PoolContext, names: list[str]) -> list[Volume]:
    """The finished volumes among `names`."""
    volumes = []
    for name in names:
        try:
            volumes.append(await context.describe_volume(name))
        except NotFound:
            continue  # being created or deleted right now
    return volumes
