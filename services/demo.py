"""The demo story. Until the services exist it shows the typed messages at work."""

from rich.console import Console

from schemas import Envelope, registry
from services.catalog import load_all_messages


async def run_demo(console: Console) -> bool:
    """Run the story; return True only when every check passed."""
    load_all_messages()
    console.print(f"[bold]strata[/bold]: {len(list(registry))} message types registered")
    for model in registry:
        envelope = Envelope.wrap(model.model_construct(), producer="demo@localhost")
        console.print(f"  {envelope.type} v{envelope.version}")
    return True
