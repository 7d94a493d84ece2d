"""The checks a downloaded image passes before it is stored: its checksum, then its format as `qemu-img info` sees
it. Each refusal is `InvalidArgument` whose message starts with the check's name (`checksum check`, `format
check`), which is what DOWNLOAD_ERROR shows.

Format rules: the image must be in the format it was registered with (a qcow2 registered as raw would be handed to
guests as raw, and the reverse would make qemu read a guest-made header); a qcow2 must have no backing file (it
could name any file of the host) and pass `qemu-img check`; the disk it describes must not exceed the limit.
"""

from pathlib import Path

from plugins.qcow2fs.qemu_img import QemuImg
from schemas.errors import InvalidArgument, StrataError
from schemas.image import ImageFormat, parse_checksum


def check_checksum(registered: str | None, digests: dict[str, str]) -> None:
    """Compare the registered checksum (CloudStack's form) with the download's digest."""
    if registered is None:
        return
    algorithm, expected = parse_checksum(registered)
    actual = digests[algorithm]
    if actual != expected:
        raise InvalidArgument(
            f"checksum check: the download's {algorithm} is {actual}, not the registered {expected}", field="checksum"
        )


def algorithms_for(registered: str | None) -> set[str]:
    """The digests a download computes: SHA-256 always (what the stores keep), and the registered checksum's."""
    return {"sha256"} | ({parse_checksum(registered)[0]} if registered else set())


async def check_format(qemu: QemuImg, path: Path, declared: ImageFormat, max_virtual_bytes: int) -> int:
    """Check the image's format; return the virtual size of the disk it describes."""
    try:
        info = (await qemu.info(path))[0]
    except StrataError as error:
        raise InvalidArgument(f"format check: qemu-img info cannot read it: {error.message}", field="format") from None
    actual = str(info.get("format"))
    expected = "raw" if declared is ImageFormat.ISO else declared.value  # qemu-img sees an ISO as raw bytes
    if actual != expected:
        raise InvalidArgument(f"format check: it is {actual}, not the registered {declared.value}", field="format")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidArgument(
            "format check: the image has a backing file; a template must be standalone", field="format"
        )
    virtual = int(str(info.get("virtual-size", 0)))
    if virtual > max_virtual_bytes:
        raise InvalidArgument(
            f"format check: it describes a disk of {virtual} bytes, more than the limit of {max_virtual_bytes}",
            field="format",
        )
    if actual == "qcow2":
        try:
            await qemu.run("check", "-q", "-f", "qcow2", str(path))
        except StrataError as error:
            raise InvalidArgument(f"format check: qemu-img check failed: {error.message}", field="format") from None
    return virtual
