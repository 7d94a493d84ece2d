"""The deployed topology: every daemon's shared queue with its bindings, from the declared handler tables.

Events go only to the queues that exist when they are published. Declaring every queue up front
(`strata topology apply`, and every daemon at start) means an event published before its consumer first ran
waits in that consumer's queue instead of being dropped as unroutable.
"""

from collections.abc import Sequence

from bus.ports import QueueKind, Transport
from services.runtime.daemon import Daemon


async def apply_topology(transport: Transport, daemons: Sequence[Daemon], *, kind: QueueKind) -> list[str]:
    """Declare the queues of `daemons` with their bindings on a started transport (idempotent); return their names."""
    declared: list[str] = []
    for daemon in daemons:
        for queue in daemon.queues:
            declared.append(await transport.declare_queue(queue.name, queue.bindings(), kind=kind))
    return declared
