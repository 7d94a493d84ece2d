"""`python -m services.snapshot`: the snapshot daemon (what `strata run snapshot` runs), set by STRATA_*."""

import asyncio

from services.daemons import serve_daemons
from services.runtime.daemon import Settings


def main() -> None:
    """Run the snapshot daemon with the settings of the environment."""
    asyncio.run(serve_daemons(["snapshot"], Settings()))


if __name__ == "__main__":
    main()
