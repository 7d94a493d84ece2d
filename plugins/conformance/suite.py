"""The conformance suite the kit runs (collected only with `--strata-plugin`; see `plugins/conformance/__init__.py`).

Tests are synchronous and drive the plugin on their own event loop, so the kit needs no async pytest plugin.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from plugins.conformance.copies import (
    assert_progress_reaches,
    qemu_img_convert,
    stopped_at_first_report,
    write_large_source,
)
from plugins.conformance.harness import NOT_CLAIMED, Kit, load_plugin, read_config_file
from plugins.conformance.steps import (
    Step,
    backup_steps,
    comparable,
    image_steps,
    pool_steps,
    snapshot_steps,
    teardown_steps,
    volume_steps,
    write_source,
)
from plugins.registry import validate_config
from plugins.sdk import Capability, Role, faults
from plugins.sdk.blocks import BlockMap, Extent
from plugins.sdk.config import secret_fields
from plugins.sdk.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from plugins.sdk.protocols import (
    BackupTarget,
    BlockImageStore,
    ContentWriter,
    FileAdopter,
    ImageStore,
    PrimaryStorage,
    SnapshotProvider,
)
from plugins.sdk.types import ImageKind, SnapshotKind, VolumeFormat

GROUPS = ("primary", "snapshots", "backup", "image")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise by role group, and by the plugin's fault points."""
    if "group" in metafunc.fixturenames:
        metafunc.parametrize("group", GROUPS)
    if "fault_point" in metafunc.fixturenames:
        name = metafunc.config.getoption("strata_plugin")
        points = load_plugin(name).fault_points if name else ()
        metafunc.parametrize("fault_point", points or ["(none declared)"])


@pytest.fixture
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    """The plugin under test with a fresh driver, config and scratch space; what the test made is deleted after."""
    name = request.config.getoption("strata_plugin")
    plugin = load_plugin(name)
    opened = Kit(plugin, read_config_file(request.config.getoption("strata_plugin_config")))
    try:
        yield opened
    finally:
        faults.disarm()
        opened.close()


def _require(kit: Kit, group: str) -> None:
    if group == "primary" and not kit.claims(Role.PRIMARY):
        pytest.skip(f"primary role {NOT_CLAIMED}")
    if group == "snapshots" and not (
        kit.claims(Role.PRIMARY) and (kit.claims(Capability.SNAPSHOT) or kit.claims(Capability.DELTA_SNAPSHOT))
    ):
        pytest.skip(f"snapshots {NOT_CLAIMED}")
    if group == "backup" and not kit.claims(Role.BACKUP):
        pytest.skip(f"backup role {NOT_CLAIMED}")
    if group == "image" and not kit.claims(Role.IMAGE):
        pytest.skip(f"image role {NOT_CLAIMED}")


def life_cycle(kit: Kit, group: str) -> list[Step]:
    """The steps of one role group (a primary group starts with the pool and ends by removing it)."""
    source = write_source(kit.scratch)
    if group == "backup":
        return backup_steps(kit, source)
    if group == "image":
        return image_steps(kit, source)
    body = volume_steps(kit, source) if group == "primary" else snapshot_steps(kit, source)
    return [*pool_steps(kit), *body, *teardown_steps(kit)]


def claimed_groups(kit: Kit) -> list[str]:
    """The role groups the manifest claims."""
    claimed = []
    for group in GROUPS:
        try:
            _require(kit, group)
        except pytest.skip.Exception:
            continue
        claimed.append(group)
    return claimed


def _run(kit: Kit, step: Step) -> object:
    step.track()
    result = kit.run(step.call())
    step.check(result)
    return result


def test_manifest_loads_and_the_driver_plays_its_roles(kit: Kit) -> None:
    """The manifest is valid and the driver implements the protocol of every claimed role."""
    roles = {
        Role.PRIMARY: PrimaryStorage,
        Role.BACKUP: BackupTarget,
        Role.IMAGE: ImageStore,
    }
    for role, protocol in roles.items():
        if kit.claims(role):
            assert isinstance(kit.driver, protocol), f"claims {role.value} but does not implement {protocol.__name__}"
    if kit.claims(Capability.SNAPSHOT) or kit.claims(Capability.DELTA_SNAPSHOT):
        assert isinstance(kit.driver, SnapshotProvider), "claims snapshots but does not implement SnapshotProvider"
    assert kit.manifest.name == kit.plugin.name


def test_config_errors_name_the_plugin_and_the_field(kit: Kit) -> None:
    """A misspelt, missing or mistyped field gives InvalidArgument naming the plugin and the field, never the value."""
    marker = f"do-not-echo-{kit.unique}"
    with pytest.raises(InvalidArgument) as caught:
        validate_config(kit.plugin, {**kit.raw_config, "no_such_field": marker})
    assert caught.value.field == "no_such_field"
    assert kit.plugin.name in caught.value.message
    assert marker not in caught.value.message
    schema = kit.manifest.config_model.model_json_schema()
    for name in schema.get("required", []):
        with pytest.raises(InvalidArgument) as caught:
            validate_config(kit.plugin, {key: value for key, value in kit.raw_config.items() if key != name})
        assert caught.value.field == name
    for name in secret_fields(schema):
        with pytest.raises(InvalidArgument) as caught:
            validate_config(kit.plugin, {**kit.raw_config, name: [marker]})
        assert caught.value.field is not None
        assert caught.value.field.startswith(name)
        assert marker not in caught.value.message, f"the error repeats the value of secret field {name!r}"


def test_life_cycle(kit: Kit, group: str) -> None:
    """Every operation of the role, once, in the order a cloud uses them, each result checked."""
    _require(kit, group)
    for step in life_cycle(kit, group):
        _run(kit, step)


def test_every_mutating_call_twice(kit: Kit, group: str) -> None:
    """Calling any mutating operation again with the same ids returns the same result and changes nothing."""
    _require(kit, group)
    for step in life_cycle(kit, group):
        first = _run(kit, step)
        if step.mutating:
            again = _run(kit, step)
            assert comparable(again) == comparable(first), f"{step.name}: a repeated call returned another result"


def test_a_conflicting_id_is_refused(kit: Kit, group: str) -> None:
    """Reusing an id for a different request raises AlreadyExists."""
    _require(kit, group)
    source = write_source(kit.scratch)
    if group in ("primary", "snapshots"):
        _run(kit, pool_steps(kit)[0])
        volume_id = kit.id("vol")
        kit.created.volumes.append(volume_id)
        kit.run(kit.primary.create_volume(volume_id, 4 * 1024 * 1024))
        if group == "primary":
            with pytest.raises(AlreadyExists):
                kit.run(kit.primary.create_volume(volume_id, 8 * 1024 * 1024))
            return
        snapshot_id = kit.id("snap")
        kit.created.snapshots.append(snapshot_id)
        kind = SnapshotKind.DELTA if kit.claims(Capability.DELTA_SNAPSHOT) else SnapshotKind.FULL
        kit.run(kit.snapshots.create_snapshot(snapshot_id, volume_id, kind))
        other = kit.id("vol")
        kit.created.volumes.append(other)
        kit.run(kit.primary.create_volume(other, 4 * 1024 * 1024))
        with pytest.raises(AlreadyExists):
            kit.run(kit.snapshots.create_snapshot(snapshot_id, other, kind))
    elif group == "backup":
        backup_id = kit.id("backup")
        kit.created.backups.append(backup_id)
        kit.run(kit.backups.backup(backup_id, "volume-a", source))
        with pytest.raises(AlreadyExists):
            kit.run(kit.backups.backup(backup_id, "volume-b", source))
    else:
        image_id = kit.id("image")
        kit.created.images.append(image_id)
        kit.run(kit.images.put_image(image_id, ImageKind.TEMPLATE, source))
        with pytest.raises(AlreadyExists):
            kit.run(kit.images.put_image(image_id, ImageKind.ISO, source))


def test_a_copy_in_that_fails_for_good_leaves_the_id_free(kit: Kit) -> None:
    """A volume whose build failed for good (its source does not exist) is not half there: the corrected request
    for the same id makes the volume instead of meeting AlreadyExists."""
    _require(kit, "primary")
    if not kit.claims(Capability.COPY):
        pytest.skip(f"copy {NOT_CLAIMED}")
    _run(kit, pool_steps(kit)[0])
    volume_id = kit.id("vol")
    kit.created.volumes.append(volume_id)
    with pytest.raises(NotFound):
        kit.run(kit.primary.copy_in(volume_id, kit.scratch / "no-such-source.raw", source_format=VolumeFormat.RAW))
    source = write_source(kit.scratch, "corrected.raw")
    volume = kit.run(kit.primary.copy_in(volume_id, source, source_format=VolumeFormat.RAW))
    assert volume.size_bytes == source.stat().st_size


def test_missing_objects_are_not_found(kit: Kit, group: str) -> None:
    """Reading what does not exist raises NotFound; deleting it succeeds (deletes are retried)."""
    _require(kit, group)
    missing = kit.id("missing")
    scratch: Path = kit.scratch / "never-written.raw"
    if group in ("primary", "snapshots"):
        _run(kit, pool_steps(kit)[0])
        if group == "primary":
            with pytest.raises(NotFound):
                kit.run(kit.primary.get_volume(missing))
            kit.run(kit.primary.delete_volume(missing))
        else:
            with pytest.raises(NotFound):
                kit.run(kit.snapshots.get_snapshot(missing))
            kit.run(kit.snapshots.delete_snapshot(missing))
    elif group == "backup":
        with pytest.raises(NotFound):
            kit.run(kit.backups.restore(missing, scratch))
        kit.run(kit.backups.delete_backup(missing))
    else:
        with pytest.raises(NotFound):
            kit.run(kit.images.get_image(missing, scratch))
        kit.run(kit.images.delete_image(missing))


def test_crash_at_fault_point_then_a_second_call_reconciles(kit: Kit, fault_point: str) -> None:
    """Crash the life cycle at the point, call the interrupted operation again, and finish: every check holds."""
    if fault_point not in kit.plugin.fault_points:
        pytest.skip("the plugin declares no fault point")
    hits_before = faults.hits(fault_point)
    crashed: list[str] = []
    faults.arm(fault_point)
    for group in claimed_groups(kit):
        for step in life_cycle(kit, group):
            try:
                _run(kit, step)
            except faults.InjectedCrash:
                crashed.append(step.name)
                _run(kit, step)
        if crashed:
            break  # the group that crashed ran to its end, every check after the re-call held
    faults.disarm()
    assert faults.hits(fault_point) > hits_before, f"the life cycle never reached fault point {fault_point!r}"
    assert crashed, f"fault point {fault_point!r} was reached but did not crash"


def test_copies_report_progress_and_a_deadline_leaves_nothing_half_written(kit: Kit) -> None:
    """copy_in and copy_out report progress up to the whole size; a copy cancelled midway (a deadline, as the agent
    enforces it) leaves no partial target, and the same call again completes it."""
    _require(kit, "primary")
    if not kit.claims(Capability.COPY):
        pytest.skip(f"copy {NOT_CLAIMED}")
    _run(kit, pool_steps(kit)[0])
    source = write_large_source(kit.scratch)
    size = source.stat().st_size
    volume_id = kit.id("vol")
    kit.created.volumes.append(volume_id)
    kit.run(
        stopped_at_first_report(
            lambda report: kit.primary.copy_in(volume_id, source, source_format=VolumeFormat.RAW, progress=report)
        )
    )
    reports: list[tuple[int, int]] = []
    volume = kit.run(
        kit.primary.copy_in(
            volume_id, source, source_format=VolumeFormat.RAW, progress=lambda *done: reports.append(done)
        )
    )
    assert volume.size_bytes == size
    assert_progress_reaches(reports, size)

    out = kit.scratch / "copied-out"
    out.mkdir()
    target = out / "volume.raw"
    kit.run(stopped_at_first_report(lambda report: kit.primary.copy_out(volume_id, target, progress=report)))
    left = [path.name for path in out.iterdir()]
    assert left in ([], [target.name]), f"a cancelled copy_out left a partial file behind: {left}"
    reports.clear()
    kit.run(kit.primary.copy_out(volume_id, target, progress=lambda *done: reports.append(done)))
    assert_progress_reaches(reports, size)
    assert target.read_bytes() == source.read_bytes()


def test_a_staged_file_is_adopted_whole_and_nothing_else_is(kit: Kit) -> None:
    """A plugin that adopts staged files (`FileAdopter`) makes a volume of one with the file's bytes, leaves nothing
    in its staging directory, and refuses a file staged elsewhere, changing nothing."""
    _require(kit, "primary")
    adopter = kit.primary
    if not isinstance(adopter, FileAdopter):
        pytest.skip("the plugin does not adopt staged files (FileAdopter)")
    formats = [form for form in (VolumeFormat.QCOW2, VolumeFormat.RAW) if adopter.adopts(form)]
    assert formats, "a FileAdopter adopts at least one of qcow2 and raw"
    _run(kit, pool_steps(kit)[0])
    source = write_source(kit.scratch, "to-adopt.raw")
    directory = kit.run(adopter.staging_directory()) / f"kit-{kit.id('staged')}"
    directory.mkdir()
    staged = directory / f"volume.{formats[0].value}"
    qemu_img_convert(source, staged, formats[0].value)
    volume_id = kit.id("vol")
    kit.created.volumes.append(volume_id)
    volume = kit.run(adopter.adopt(volume_id, staged, source_format=formats[0]))
    assert volume.size_bytes == source.stat().st_size
    assert not staged.exists(), "an adopted file is the volume's now: nothing stays in staging"
    out = kit.scratch / "adopted.raw"
    kit.run(kit.primary.copy_out(volume_id, out))
    assert out.read_bytes() == source.read_bytes()
    elsewhere = kit.scratch / f"elsewhere.{formats[0].value}"
    qemu_img_convert(source, elsewhere, formats[0].value)
    with pytest.raises(InvalidArgument):
        kit.run(adopter.adopt(kit.id("vol"), elsewhere, source_format=formats[0]))
    assert elsewhere.exists()
    directory.rmdir()


def _write_at(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def test_a_new_content_is_written_in_place_and_switched_in_whole(kit: Kit) -> None:
    """A plugin that lays a volume's new content out for writing in place (`ContentWriter`) gives places covering
    the whole size, in files it can be written in; what is written there is the volume's content after a clean exit,
    and nothing of it after an error."""
    _require(kit, "primary")
    writer = kit.primary
    if not isinstance(writer, ContentWriter):
        pytest.skip("the plugin does not lay out new content (ContentWriter)")
    _run(kit, pool_steps(kit)[0])
    source = write_source(kit.scratch, "content.raw")
    size = source.stat().st_size
    volume_id = kit.id("vol")
    kit.created.volumes.append(volume_id)
    kit.run(kit.primary.create_volume(volume_id, size))
    data = source.read_bytes()

    async def fill(content: bytes, *, fail: bool) -> None:
        async with writer.new_content(volume_id, size) as blocks:
            assert blocks.size_bytes == size
            position = 0
            for extent in blocks.extents:
                assert extent.start == position, "the places cover the size in order, without gaps"
                assert extent.file is not None, "every place of a new content is in a file"
                await asyncio.to_thread(_write_at, extent.file, extent.file_offset, content[extent.start : extent.end])
                position = extent.end
            assert position == size
            if fail:
                raise RuntimeError("the writer failed")

    out = kit.scratch / "content-out.raw"
    kit.run(fill(data, fail=False))
    kit.run(kit.primary.copy_out(volume_id, out))
    assert out.read_bytes() == data
    with pytest.raises(RuntimeError):
        kit.run(fill(bytes(reversed(data)), fail=True))
    out.unlink()
    kit.run(kit.primary.copy_out(volume_id, out))
    assert out.read_bytes() == data, "a content whose writer failed is discarded: the volume keeps its bytes"


def _new_file_content(path: Path, opened: list[int]) -> Callable[[int], AbstractAsyncContextManager[BlockMap]]:
    """A `ContentOpener` whose content is one file made at the size asked (each opening recorded in `opened`)."""

    @asynccontextmanager
    async def opener(size: int) -> AsyncIterator[BlockMap]:
        opened.append(size)
        with path.open("wb") as file:
            file.truncate(size)
        yield BlockMap(size_bytes=size, extents=(Extent(start=0, length=size, file=str(path)),))

    return opener


def test_a_transit_copy_is_read_back_by_its_name_then_deleted_whole(kit: Kit) -> None:
    """An image store that takes block maps (`BlockImageStore`) keeps a transit copy (a staged migration's): it is
    named by `chunk_list_checksum` or its SHA-256, given back byte for byte under that name, refused under another
    before anything is opened, and gone after `delete_image` (twice is fine); it is not listed as an image."""
    _require(kit, "image")
    store = kit.images
    if not isinstance(store, BlockImageStore):
        pytest.skip("the plugin does not take block maps (BlockImageStore)")
    source = write_source(kit.scratch, "transit.raw")
    size = source.stat().st_size
    blocks = BlockMap(size_bytes=size, extents=(Extent(start=0, length=size, file=str(source)),))
    copy_id = kit.id("transit")
    kit.created.images.append(copy_id)
    stored = kit.run(store.put_image_blocks(copy_id, ImageKind.TEMPLATE, blocks, transit=True))
    assert stored.size_bytes == size
    name = f"chunklist-sha256:{stored.chunk_list_checksum}" if stored.chunk_list_checksum else None
    name = name or f"sha256:{stored.checksum}"
    assert stored.checksum or stored.chunk_list_checksum, "a transit copy is named by one of its checksums"
    assert copy_id not in [image.image_id for image in kit.run(store.list_images())], "a transit copy is no image"
    opened: list[int] = []
    target = kit.scratch / "transit-in.raw"
    with pytest.raises(FailedPrecondition):
        kit.run(store.get_image_into(copy_id, _new_file_content(target, opened), checksum="sha256:" + "0" * 64))
    assert opened == [], "a copy refused by its name opens nothing"
    kit.run(store.get_image_into(copy_id, _new_file_content(target, opened), checksum=name))
    assert opened == [size]
    assert target.read_bytes() == source.read_bytes()
    kit.run(store.delete_image(copy_id))
    kit.run(store.delete_image(copy_id))
    with pytest.raises(NotFound):
        kit.run(store.get_image_into(copy_id, _new_file_content(target, opened), checksum=name))
