"""`python -m services.agent --host H --cluster C`: one agent daemon (what `strata run agent` runs)."""

import argparse
import asyncio

from services.agent.settings import AgentSettings
from services.daemons import serve_daemons
from services.runtime.daemon import Settings


def main() -> None:
    """Read the host and cluster from the command line (or STRATA_AGENT_*), the rest from STRATA_*, and run."""
    defaults = AgentSettings()
    parser = argparse.ArgumentParser(prog="python -m services.agent", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help="this host's name (its queue)")
    parser.add_argument("--cluster", default=defaults.cluster, help="the host's cluster (the shared queue)")
    arguments = parser.parse_args()
    settings = defaults.model_copy(update={"host": arguments.host, "cluster": arguments.cluster})
    asyncio.run(serve_daemons(["agent"], Settings(settings)))


if __name__ == "__main__":
    main()
