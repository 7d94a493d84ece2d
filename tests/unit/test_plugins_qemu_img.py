"""qcow2fs's qemu-img adapter: stderr translated into the SDK's errors, progress parsed, headers read directly."""

import asyncio
from pathlib import Path

import pytest

from plugins.qcow2fs.layout import check_id
from plugins.qcow2fs.qemu_img import QemuImg, read_header, translate_error
from plugins.sdk.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, StrataError, Transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ("qemu-img: Could not open 'x.qcow2': Could not open 'x.qcow2': No such file or directory", NotFound),
        ("qemu-img: error while writing at byte 0: No space left on device", ResourceExhausted),
        ("qemu-img: Could not open 'a': Failed to get \"write\" lock\nIs another process using the image?", Transient),
        ("qemu-img: Use the --shrink option to perform a shrink operation.", InvalidArgument),
        ("qemu-img: Could not create 'a': Permission denied", FailedPrecondition),
        ("qemu-img: something nobody expected", StrataError),
    ],
)
def test_stderr_is_translated(stderr: str, error: type[StrataError]) -> None:
    translated = translate_error("convert", stderr)
    assert type(translated) is error
    assert stderr.splitlines()[-1] in translated.message


def test_a_missing_binary_is_a_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition, match="qemu-utils"):
        asyncio.run(QemuImg("/nonexistent/qemu-img").run("--version"))


def test_progress_is_parsed_from_convert_output(tmp_path: Path) -> None:
    source = tmp_path / "source.raw"
    source.write_bytes(b"\x01" * 1024 * 1024)
    seen: list[float] = []
    asyncio.run(
        QemuImg().run("convert", "-p", "-O", "qcow2", str(source), str(tmp_path / "t.qcow2"), on_percent=seen.append)
    )
    assert seen
    assert seen[-1] == 100.0
    assert read_header(tmp_path / "t.qcow2").size_bytes == 1024 * 1024
    assert read_header(tmp_path / "t.qcow2").backing_file is None


def test_a_file_that_is_not_qcow2_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"not an image at all, just text")
    with pytest.raises(InvalidArgument):
        read_header(tmp_path / "plain")
    with pytest.raises(NotFound):
        read_header(tmp_path / "missing")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x" * 200])
def test_ids_that_could_escape_the_pool_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        check_id(bad, "volume_id")
