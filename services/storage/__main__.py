"""`python -m services.storage`: the storage daemon (what `strata run storage` runs), set by STRATA_*."""

import asyncio

from services.daemons import serve_daemons
from services.runtime.daemon import Settings


def main() -> None:
    """Run the storage daemon with the settings of the environment."""
    asyncio.run(serve_daemons(["storage"], Settings()))


if __name__ == "__main__":
    main()
