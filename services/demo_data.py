"""The demo's hands on the data and the VM: write patterns with qemu-io, checksum with qemu-img, a test-driver VM.

These touch files the way a guest would (qemu-io writes through the qcow2 chain, as QEMU does) and read them the
way a backup would (`qemu-img convert` flattens the chain), so the checks see what the VM would see.
"""

import asyncio
import hashlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt

from schemas.errors import FailedPrecondition, StrataError

TOOLS = {"qemu-img": "qemu-utils", "qemu-io": "qemu-utils"}
CHUNK = 1024 * 1024


def require_tools() -> None:
    """Raise FailedPrecondition naming the package to install when qemu-img or qemu-io is missing."""
    missing = [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise FailedPrecondition("missing " + ", ".join(missing))


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    # qemu-io reports some failures on stdout with exit status 0, so both are checked.
    text = (out + err).decode(errors="replace")
    if process.returncode != 0 or "error" in text.lower() or "failed" in text.lower():
        raise StrataError(f"{command[0]} failed: {text.strip()[:300]}")


async def write_pattern(path: Path, pattern: int, *, offset: int, length: int) -> None:
    """Write `length` bytes of `pattern` at `offset` into the qcow2 image at `path` (through its chain)."""
    await _run("qemu-io", "-f", "qcow2", "-c", f"write -P 0x{pattern:02x} {offset} {length}", str(path))


async def checksum(path: Path, scratch: Path) -> str:
    """The sha256 of the image's guest-visible bytes (the whole virtual disk, flattened to raw)."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".sum-") as directory:
        raw = Path(directory) / "flat.raw"
        await _run("qemu-img", "convert", "-O", "raw", str(path), str(raw))
        return await asyncio.to_thread(_sha256, raw)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DataCheck:
    """One volume's checksum after the revert against the one it had when the snapshot was taken."""

    name: str
    expected: str
    found: str

    @property
    def passed(self) -> bool:
        """Whether the volume holds the snapshot's bytes again."""
        return self.expected == self.found


class VirtualMachine:
    """A VM in libvirt's test driver, with one disk per volume.

    The test driver's VMs live as long as one connection of the process stays open: this one holds its own, so the
    agent (which opens and closes its connections) keeps seeing the VM.
    """

    def __init__(self, uri: str = "test:///default") -> None:
        self.connection = libvirt.open(uri)
        self.domain: libvirt.virDomain | None = None

    def define(self, vm_id: uuid.UUID, disks: list[Path]) -> None:
        """Define the VM with `disks` as vda, vdb, ..."""
        devices = "".join(
            f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
            f"<target dev='vd{chr(ord('a') + index)}'/></disk>"
            for index, disk in enumerate(disks)
        )
        self.domain = self.connection.defineXML(
            f"<domain type='test'><name>demo-vm-{vm_id.hex[:8]}</name><uuid>{vm_id}</uuid><memory>65536</memory>"
            f"<os><type>hvm</type></os><devices>{devices}</devices></domain>"
        )

    def start(self) -> None:
        """Power the VM on."""
        assert self.domain is not None, "define the VM first"
        self.domain.create()

    def is_running(self) -> bool:
        """Whether the VM runs."""
        return self.domain is not None and bool(self.domain.isActive())

    def remove(self) -> None:
        """Power off and forget the VM, then close the connection."""
        if self.domain is not None:
            try:
                if self.domain.isActive():
                    self.domain.destroy()
                self.domain.undefine()
            except libvirt.libvirtError:
                pass  # the VM is gone already: nothing left to clean
            self.domain = None
        self.connection.close()
