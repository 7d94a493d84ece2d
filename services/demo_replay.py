"""The demo's chapter on looking back: the revert read again from the journal as `strata replay --saga S` reads it
(every message in causal order, who sent it to whom, how long each answer took), its services as the lifelines of a
sequence diagram, the diagram written as a self-contained HTML file an engineer attaches to an incident, and the
first lines of its Mermaid text."""

import tempfile
from pathlib import Path
from uuid import UUID

from rich.console import Console

from bus.postgres.pool import Pool
from services.replay.diagram import mermaid, write_diagram
from services.replay.reading import read
from services.replay.saga_records import load_sagas
from services.replay.selection import Selection
from services.replay.timeline import lifelines, timeline

SHOWN = 8  # lines of the Mermaid text printed


async def replay_chapter(console: Console, pool: Pool, saga_id: UUID) -> bool:
    """Read the saga's operation back from the journal; False if the journal holds none of it."""
    console.rule("what happened, from the journal (strata replay)")
    found, _ = await read(pool, Selection(saga_ids=(saga_id,), whole_operations=True), limit=10_000)
    if not found:
        console.print(f"[red]✗[/red] the journal holds no message of saga {saga_id}")
        return False
    lines = timeline(found, await load_sagas(pool, [saga_id]))
    diagram = Path(tempfile.gettempdir()) / "strata-demo-revert-sequence.html"  # kept after the demo (overwritten)
    write_diagram(diagram, lines, title=f"the demo's revert, saga {saga_id}")
    console.print(
        f"[green]✓[/green] {len(found)} messages of the revert, in causal order between "
        f"{', '.join(lifelines(lines))} (strata replay --saga {saga_id})"
    )
    console.print(f"[green]✓[/green] sequence diagram written to {diagram} (--diagram FILE); its Mermaid text begins:")
    for text in mermaid(lines).splitlines()[:SHOWN]:
        console.print(f"    {text}", highlight=False, soft_wrap=True)
    return True
