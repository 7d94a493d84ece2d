"""What the image service's handlers and worker are given by its bootstrap, and how they answer a request later.

The registration of an image is answered at once (`image.registered`); each store's download outcome, and a
delete's, comes later from the worker, in the lineage of the command that asked (kept in the image's row).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from plugins.registry import Registry
from schemas import Envelope, Message
from services.image.drivers import StoreDrivers
from services.image.repository import CopyRow, ImageRow
from services.image.wakeup import Wakeup
from services.runtime.sealing import SecretSealer

PRODUCER = "image"
GIB = 1 << 30


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds of one download attempt.

    Attributes:
        max_bytes: The largest image file accepted (the server's length is checked first, then every byte).
        max_virtual_bytes: The largest disk an image may describe (`qemu-img info`'s virtual size).
        stall_seconds: How long the server may send nothing before the attempt is given up.
        deadline_seconds: How long one attempt may take in all.
        attempts: How many attempts a download gets (a stall or a dropped connection resumes where it stopped).
    """

    max_bytes: int = 64 * GIB
    max_virtual_bytes: int = 16 * 1024 * GIB
    stall_seconds: float = 60.0
    deadline_seconds: float = 6 * 3600.0
    attempts: int = 3


@dataclass
class ImageDeps:
    """Ports and settings of the image service (never adapters of other services)."""

    plugins: Registry
    sealer: SecretSealer
    staging: Path
    limits: DownloadLimits = field(default_factory=DownloadLimits)
    lease_seconds: float = 30.0
    progress_interval: float = 1.0
    qemu_img: str = "qemu-img"
    stores: StoreDrivers = field(init=False)
    wakeup: Wakeup = field(default_factory=Wakeup)
    """Nudges the worker when a handler recorded work for it."""

    def __post_init__(self) -> None:
        self.stores = StoreDrivers(self.plugins, self.sealer)


def lineage(envelope: Envelope) -> dict[str, Any]:  # Any: JSON
    """What answering `envelope` later takes (kept in the image's row)."""
    return {"message_id": str(envelope.message_id), "correlation_id": str(envelope.correlation_id)}


def later_answer(request: dict[str, Any], payload: Message) -> Envelope:  # Any: JSON, see `lineage`
    """`payload` in the lineage of the request that `request` recorded."""
    return Envelope.wrap(payload, correlation_id=UUID(request["correlation_id"]), producer=PRODUCER).model_copy(
        update={"causation_id": UUID(request["message_id"])}
    )


def answer_to(copy: CopyRow, image: ImageRow) -> dict[str, Any]:  # Any: JSON, see `lineage`
    """Whom a copy's outcome answers: the copy command that made it, else the image's registration."""
    return copy.request if copy.request is not None else image.request
