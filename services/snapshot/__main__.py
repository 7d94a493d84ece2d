"""`python -m services.snapshot`: the snapshot daemon with its settings from the environment."""

import asyncio

from services.snapshot.bootstrap import run

if __name__ == "__main__":
    asyncio.run(run())
