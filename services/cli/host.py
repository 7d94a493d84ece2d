"""`strata host list`: the hosts whose agents registered, with their state and VMs; and the look-up that lets
`pool add`, `volume create` and `vm revert` refuse an unknown host or cluster before anything is sent.

The storage service keeps the registry from the agents' heartbeats (schemas.hosts). A host is Up while its agent
beats, Disconnected once it missed three heartbeats.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import typer

from schemas.errors import InvalidArgument, NotFound
from services.cli.talking import JsonOption, TimeoutOption, console, id_or_name, listing, print_json, talk, the_only

if TYPE_CHECKING:  # messages and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.hosts import HostInfo
    from services.cli.sending import Client

app = typer.Typer(help="Hypervisor hosts, as their agents registered them.", no_args_is_help=True)
NO_HOSTS = "no agent ever registered a host: start one with `strata run agent --host HOST --cluster CLUSTER`"


async def known_hosts(client: "Client", *, timeout: float) -> "tuple[HostInfo, ...]":
    """Every host in the registry (asked of the storage service)."""
    from schemas.hosts import HostsListed, ListHosts

    return (await client.ask(ListHosts(), HostsListed, timeout=timeout)).hosts


def check_placement(hosts: "tuple[HostInfo, ...]", *, host: str | None, cluster: str | None) -> None:
    """InvalidArgument, listing the known ones, if `host` or `cluster` is not in the registry (or not together)."""
    if host is None and cluster is None:
        return
    if not hosts:
        raise InvalidArgument(NO_HOSTS, field="host" if host is not None else "cluster")
    names = sorted(info.identity.host for info in hosts)
    clusters = sorted({info.identity.cluster_id for info in hosts})
    if host is not None and host not in names:
        raise InvalidArgument(f"unknown host {host!r}; known hosts: {', '.join(names)}", field="host")
    if cluster is not None and cluster not in clusters:
        raise InvalidArgument(f"unknown cluster {cluster!r}; known clusters: {', '.join(clusters)}", field="cluster")
    if host is not None and cluster is not None:
        actual = next(info.identity.cluster_id for info in hosts if info.identity.host == host)
        if actual != cluster:
            raise InvalidArgument(f"host {host!r} is in cluster {actual!r}, not {cluster!r}", field="cluster")


def cluster_of(hosts: "tuple[HostInfo, ...]", host: str) -> str:
    """The cluster `host`'s agent registered (the host is known: `check_placement` said so)."""
    return next(info.identity.cluster_id for info in hosts if info.identity.host == host)


def vm_placement(
    hosts: "tuple[HostInfo, ...]", vm: str, *, host: str | None, cluster: str | None
) -> tuple[UUID, str, str]:
    """The VM `vm` names, the host it is on and that host's cluster: where a volume for it must be placed. NotFound
    if no registered host knows it; InvalidArgument if `host` or `cluster`, when given, is not where it is."""
    vm_id = vm_id_of(hosts, vm)
    found = _hosting(hosts, vm_id)
    if found is None:
        raise NotFound(f"no registered host knows VM {vm} (see `strata vm list`)", field="vm")
    on, in_cluster = found.identity.host, found.identity.cluster_id
    if host is not None and host != on:
        raise InvalidArgument(f"VM {vm} is on host {on!r}, not {host!r}", field="host")
    if cluster is not None and cluster != in_cluster:
        raise InvalidArgument(f"VM {vm} is in cluster {in_cluster!r}, not {cluster!r}", field="cluster")
    return vm_id, on, in_cluster


def _hosting(hosts: "tuple[HostInfo, ...]", vm_id: UUID) -> "HostInfo | None":
    """The host whose hypervisor knows `vm_id`, or None."""
    return next((info for info in hosts if any(each.vm_id == vm_id for each in info.vms)), None)


def host_of_vm(hosts: "tuple[HostInfo, ...]", vm_id: UUID) -> str:
    """The host whose hypervisor knows `vm_id`; NotFound says to give --host."""
    found = _hosting(hosts, vm_id)
    if found is not None:
        return found.identity.host
    raise NotFound(f"no registered host knows VM {vm_id} (see `strata vm list`): give --host", field="host")


def vm_id_of(hosts: "tuple[HostInfo, ...]", vm: str) -> UUID:
    """The VM `vm` names: its id as given, or the one VM of that name the registered hosts know."""
    given = id_or_name(vm)
    if given is not None:
        return given
    return the_only(
        [known.vm_id for info in hosts for known in info.vms if known.name == vm],
        missing=f"no registered host knows a VM named {vm!r} (see `strata vm list`)",
        ambiguous=lambda count: f"{count} VMs are named {vm!r}: give its id",
        field="vm",
    )


def ago(moment: datetime) -> str:
    """How long ago, for people: 4s, 3m, 2h, 5d."""
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@app.command("list")
def list_hosts(as_json: JsonOption = False, timeout: TimeoutOption = 15.0) -> None:
    """List the hosts with their cluster, state, last heartbeat and VMs.

    Example: strata host list
    """

    async def work(client: "Client") -> "tuple[HostInfo, ...]":
        return await known_hosts(client, timeout=timeout)

    hosts = talk(work)
    if as_json:
        print_json(list(hosts))
        return
    if not hosts:
        console.print(NO_HOSTS)
        return
    table = listing("host", "cluster", "zone", "hypervisor", "state", "seen", "VMs", "version")
    for info in hosts:
        identity = info.identity
        running = sum(vm.power_state.value == "running" for vm in info.vms)
        state = f"[green]{info.state.value}[/green]" if info.state.value == "Up" else f"[red]{info.state.value}[/red]"
        table.add_row(
            identity.host,
            identity.cluster_id,
            identity.zone,
            identity.hypervisor,
            state,
            f"{ago(info.last_seen)} ago",
            f"{len(info.vms)} ({running} running)",
            identity.version,
        )
    console.print(table)
