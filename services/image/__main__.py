"""`python -m services.image`: the image daemon (what `strata run image` runs), set by STRATA_*."""

import asyncio

from services.daemons import serve_daemons
from services.runtime.daemon import Settings


def main() -> None:
    """Run the image daemon with the settings of the environment."""
    asyncio.run(serve_daemons(["image"], Settings()))


if __name__ == "__main__":
    main()
