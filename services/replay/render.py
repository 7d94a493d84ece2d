"""How a selection is shown in a terminal: the timeline as a table, the causal tree, the messages as JSON lines."""

import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from services.replay.diff import Verdict
from services.replay.reading import Recorded
from services.replay.timeline import Line, Mark, Node

if TYPE_CHECKING:
    from services.replay.redrive import Plan
    from services.replay.sandbox import SagaVerdict

_STYLE = {
    Mark.FAILURE: "red",
    Mark.DEAD_LETTER: "magenta",
    Mark.COMPENSATION: "dark_orange",
    Mark.RETRY: "yellow",
    Mark.OPERATOR: "blue",
    Mark.SAGA: "bright_black",
    Mark.START: "bold",
}


def show_timeline(console: Console, lines: list[Line]) -> None:
    """A table: when (from the first line), who to whom, what, and how long it waited for an answer."""
    if not lines:
        console.print("[dim]no message matches[/dim]")
        return
    start = lines[0].at
    table = Table(box=None, header_style="bold")
    for column in ("+time", "from", "to", "kind", "message", "answered after"):
        table.add_column(column, overflow="fold")
    for line in lines:
        style = _STYLE.get(line.mark, "")
        what = line.what + (f" attempt {line.attempt}" if line.attempt and line.attempt > 1 else "")
        if line.message is not None and line.message.problem:
            what += f" [does not decode: {line.message.problem}]"
        waited = f"{line.waited.total_seconds() * 1000:.0f} ms" if line.waited is not None else ""
        table.add_row(
            f"{(line.at - start).total_seconds():.3f}s",
            line.sender,
            ", ".join(line.receivers),
            line.mark.value,
            what,
            waited,
            style=style,
        )
    console.print(table)
    messages = sum(1 for line in lines if line.message is not None)
    console.print(f"[dim]{messages} message(s), {len(lines) - messages} saga event(s)[/dim]")


def show_tree(console: Console, roots: list[Node]) -> None:
    """The causation trees: each message under the one that caused it."""
    for root in roots:
        tree = Tree(_node_label(root.message))
        _grow(tree, root)
        console.print(tree)


def _grow(tree: Tree, node: Node) -> None:
    for child in node.children:
        _grow(tree.add(_node_label(child.message)), child)


def _node_label(message: Recorded) -> str:
    step = f" step {message.step}" if message.step is not None else ""
    return f"{message.type}{step} [dim]by {message.producer or '?'} {message.message_id}[/dim]"


def print_json(messages: list[Recorded]) -> None:
    """One JSON object per message, payload decoded and masked."""
    for message in messages:
        print(json.dumps(message.as_json()))


def show_verdicts(console: Console, verdicts: "list[SagaVerdict]", *, recorded_by: str) -> None:
    """Each saga's replay: the same, or its first divergent step and every difference field by field."""
    for verdict in verdicts:
        head = f"{verdict.name} v{verdict.version} {verdict.saga_id}"
        if verdict.same:
            console.print(
                f"[green]same[/green] {head}: {verdict.diff.count(Verdict.MATCHING)} message(s) match, "
                f"ended {verdict.replayed_status} as recorded"
            )
        else:
            _show_differences(console, verdict)
        for call in verdict.data_plane:
            console.print(f"  [dim]data plane: {call}[/dim]")
    same = sum(1 for verdict in verdicts if verdict.same)
    console.print(f"[dim]{same} of {len(verdicts)} saga(s) replay the same (recorded by strata {recorded_by})[/dim]")


def _show_differences(console: Console, verdict: "SagaVerdict") -> None:
    """A saga that replays differently: its first divergent step, why, and every difference field by field."""
    head = f"{verdict.name} v{verdict.version} {verdict.saga_id}"
    step = verdict.first_divergent_step
    console.print(f"[red]differs[/red] {head}" + (f": first divergent step {step}" if step is not None else ""))
    if verdict.reason:
        console.print(f"  {verdict.reason}")
    if verdict.recorded_status != verdict.replayed_status:
        console.print(f"  ended {verdict.replayed_status}, recorded {verdict.recorded_status}")
    for entry in verdict.diff.entries:
        if entry.verdict is Verdict.MATCHING:
            continue
        where = f"step {entry.step}" if entry.step is not None else "no step"
        console.print(f"  [yellow]{entry.verdict.value}[/yellow] {entry.type} ({where})")
        for change in entry.changes:
            console.print(f"      {change.path}: recorded {change.recorded!r}, replayed {change.replayed!r}")


def show_plan(console: Console, chosen: "Plan") -> None:
    """A re-drive's preview: every message with how it goes and where, and what of the selection is left out."""
    table = Table(box=None, header_style="bold")
    for column in ("message id", "type", "as", "routing key", "to queues"):
        table.add_column(column, overflow="fold")
    for item in chosen.planned:
        table.add_row(
            str(item.original.message_id), item.original.type, item.kind.value, item.routing_key, ", ".join(item.queues)
        )
    console.print(table)
    queues = sorted({queue for item in chosen.planned for queue in item.queues})
    console.print(
        f"{len(chosen.planned)} message(s) to {len(queues)} queue(s): {', '.join(queues)}; "
        f"{len(chosen.skipped)} event(s) left out"
    )
