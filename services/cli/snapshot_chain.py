"""`strata snapshot chain VOLUME`: draw a volume's snapshot chain (fulls, deltas, hidden snapshots kept for a
child, the merges pending), and `strata snapshot coalesce VOLUME`: merge them now (the coalesce saga)."""

from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from services.cli.talking import JsonOption, TimeoutOption, console, errors, human_bytes, print_json, talk
from services.cli.volume import find_volume

if TYPE_CHECKING:  # messages are imported when a command runs, so that `strata --help` stays fast
    from rich.tree import Tree

    from schemas.chain import ChainDescribed, ChainNodeInfo
    from services.cli.sending import Client

VolumeArgument = Annotated[str, typer.Argument(help="The volume's id or name.")]


def chain(volume: VolumeArgument, as_json: JsonOption = False, timeout: TimeoutOption = 15.0) -> None:
    """Draw a volume's snapshot chain: fulls, deltas, hidden snapshots and pending merges."""
    from schemas.chain import ChainDescribed, DescribeChain

    async def work(client: "Client") -> tuple[str, ChainDescribed]:
        info = await find_volume(client, volume, timeout=timeout)
        described = await client.ask(DescribeChain(volume_id=info.volume_id), ChainDescribed, timeout=timeout)
        return info.name, described

    name, described = talk(work)
    if as_json:
        print_json(described)
        return
    console.print(draw(name, described))
    for merge in described.pending:
        into = "the live volume" if merge.child_id is None else f"snapshot {merge.child_id}"
        console.print(f"pending merge: hidden snapshot {merge.hidden_id} into {into}")
    for orphan in described.orphans:
        console.print(f"pending drop: hidden snapshot {orphan} (nothing needs its data)")


def draw(name: str, described: "ChainDescribed") -> "Tree":
    """The chain as a tree: each snapshot under its parent, the live volume under what it is layered on."""
    from rich.tree import Tree

    hidden = sum(1 for node in described.nodes if node.hidden)
    root = Tree(
        f"[bold]{name}[/] ({described.volume_id}): {len(described.nodes) - hidden} snapshots, {hidden} hidden, "
        f"longest run {described.longest_delta_run} deltas (snapshot.delta.max {described.delta_max})"
    )
    known = {node.snapshot_id for node in described.nodes}
    pending = {merge.hidden_id for merge in described.pending}
    children: dict[UUID | None, list[ChainNodeInfo]] = {}
    for node in described.nodes:
        parent = node.parent_id if node.parent_id in known else None
        children.setdefault(parent, []).append(node)

    def grow(branch: Tree, parent: UUID | None) -> None:
        for node in children.get(parent, []):
            grow(branch.add(_label(node, node.snapshot_id in pending)), node.snapshot_id)
        if described.base_snapshot_id == parent:
            branch.add("[green]● live volume[/]")

    grow(root, None)
    return root


def _label(node: "ChainNodeInfo", merge_pending: bool) -> str:
    text = f"{node.kind.value.upper()} {node.name} ({node.snapshot_id}) {human_bytes(node.physical_size_bytes)}"
    if not node.hidden:
        return f"{text} {node.state.value}"
    note = "merge pending" if merge_pending else "kept for its children"
    return f"[dim]{text} hidden: deleted, data {note}[/]"


def coalesce(volume: VolumeArgument, as_json: JsonOption = False, timeout: TimeoutOption = 1800.0) -> None:
    """Merge a volume's hidden snapshots into their children now and give their space back."""
    from schemas.chain import ChainCoalesced, ChainCoalesceFailed, CoalesceChain

    async def work(client: "Client") -> ChainCoalesced:
        info = await find_volume(client, volume, timeout=timeout)
        with errors.status(f"coalescing the chain of {info.name} ..."):
            done = await client.send(
                CoalesceChain(volume_id=info.volume_id, reason="asked by an operator (strata snapshot coalesce)"),
                (ChainCoalesced,),
                (ChainCoalesceFailed,),
                timeout=timeout,
            )
        assert isinstance(done, ChainCoalesced)
        return done

    done = talk(work)
    if as_json:
        print_json(done)
        return
    console.print(
        f"volume {done.volume_id}: {len(done.merged)} hidden snapshots merged, {human_bytes(done.freed_bytes)} freed"
    )
