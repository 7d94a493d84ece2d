"""`python -m services.orchestrator`: the orchestrator daemon with its settings from the environment."""

import asyncio

from services.orchestrator.bootstrap import run

if __name__ == "__main__":
    asyncio.run(run())
