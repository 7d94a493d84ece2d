"""Run one daemon of the revert-VM e2e test as a process of its own, with its settings from `STRATA_*`:

    python -m tests.e2e.revert_vm_daemons storage|snapshot|orchestrator|agent

The same as `strata run <service>` (each daemon's `bootstrap.run`), without depending on the CLI.
"""

import asyncio
import sys

from services.runtime.settings import RuntimeSettings

DAEMONS = ("storage", "snapshot", "orchestrator", "agent")


async def run(daemon: str) -> None:
    """Run `daemon` until SIGTERM (or SIGKILL, which is the point of some tests)."""
    settings = RuntimeSettings()
    if daemon == "storage":
        from services.storage.bootstrap import run as run_storage

        await run_storage(settings)
    elif daemon == "snapshot":
        from services.snapshot.bootstrap import run as run_snapshot

        await run_snapshot(settings)
    elif daemon == "orchestrator":
        from services.orchestrator.bootstrap import run as run_orchestrator

        await run_orchestrator(settings)
    else:
        from services.agent.bootstrap import run as run_agent
        from services.agent.settings import AgentSettings

        await run_agent(AgentSettings(), settings)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in DAEMONS:
        sys.exit(f"usage: python -m tests.e2e.revert_vm_daemons {'|'.join(DAEMONS)}")
    asyncio.run(run(sys.argv[1]))
