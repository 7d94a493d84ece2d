"""`python -m services.orchestrator`: the orchestrator daemon (what `strata run orchestrator` runs), set by STRATA_*."""

import asyncio

from services.daemons import serve_daemons
from services.runtime.daemon import Settings


def main() -> None:
    """Run the orchestrator daemon with the settings of the environment."""
    asyncio.run(serve_daemons(["orchestrator"], Settings()))


if __name__ == "__main__":
    main()
