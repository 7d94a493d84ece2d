"""Which service takes a message, and whether it is running: a command whose service has no consumer fails at once.

A service's queue outlives the service (durable): a command published to it while nobody consumes waits there, and
the CLI would wait its whole timeout and then blame a daemon that may well be running. So before publishing, the
CLI looks at the queue of the service that takes the message (a passive declare gives its consumer count) and
names the one that is not running.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from bus.ports import Transport
from schemas.errors import FailedPrecondition


class ServiceNotRunning(FailedPrecondition):
    """A service a command needs has no consumer on its queue: nothing would answer."""


@dataclass(frozen=True)
class Service:
    """A daemon as the CLI sees it: its queue (under the namespace), how to call it and how to start it."""

    queue: str
    what: str
    start: str


STORAGE = Service("storage", "the storage service", "strata run storage")
SNAPSHOT = Service("snapshot", "the snapshot service", "strata run snapshot")
ORCHESTRATOR = Service("orchestrator", "the orchestrator", "strata run orchestrator")
BACKUP = Service("backup", "the backup service", "strata run backup")

# The service that takes each message type, by its leading words (the longest match wins). A type not listed is
# sent unchecked (its service is another's; the wait's timeout still bounds it).
OWNERS: dict[str, Service] = {
    "pool": STORAGE,
    "volume": STORAGE,
    "host": STORAGE,
    "snapshot": SNAPSHOT,
    "snapshot_policy": SNAPSHOT,
    "vm.snapshot": ORCHESTRATOR,
    "backup": BACKUP,
    "backup_repository": BACKUP,
    "backup_schedule": BACKUP,
    "backup.create": ORCHESTRATOR,
    "backup.restore": ORCHESTRATOR,
}


def agent_of(host: str) -> Service:
    """The agent of `host` (its own queue `agent.<host>`)."""
    return Service(f"agent.{host}", f"the agent of host {host}", f"strata run agent --host {host} --cluster CLUSTER")


def agents_of_cluster(cluster: str) -> Service:
    """The agents of `cluster`, who share its queue `agent.cluster.<cluster>`."""
    return Service(
        f"agent.cluster.{cluster}",
        f"cluster {cluster}'s agent",
        f"strata run agent --host HOST --cluster {cluster}",
    )


def owner_of(message_type: str) -> Service | None:
    """The service that takes `message_type`, if the CLI knows it."""
    words = message_type.split(".")
    for length in range(len(words), 0, -1):
        owner = OWNERS.get(".".join(words[:length]))
        if owner is not None:
            return owner
    return None


async def require_running(transport: Transport, services: Iterable[Service]) -> None:
    """Raise ServiceNotRunning naming the first of `services` with no consumer on its queue."""
    for service in services:
        consumers = await transport.consumers(service.queue)
        if consumers:
            continue
        why = (
            f"it never started in namespace {transport.namespace}"
            if consumers is None
            else f"nothing consumes its queue {transport.namespace}.{service.queue}"
        )
        raise ServiceNotRunning(f"{service.what} is not running ({why}): start `{service.start}` or `strata up`")
