"""`python -m services.storage`: the storage service daemon (what `strata run storage` runs), set by STRATA_*."""

import asyncio

from services.runtime.settings import RuntimeSettings
from services.storage.bootstrap import run


def main() -> None:
    """Run the storage service with the settings of the environment."""
    asyncio.run(run(RuntimeSettings()))


if __name__ == "__main__":
    main()
