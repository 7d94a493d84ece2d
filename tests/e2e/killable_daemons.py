"""Run one daemon of an e2e test as a process of its own, like `tests.e2e.revert_vm_daemons`, with one more
fault for the agent: `STRATA_E2E_KILL_AT` (a JSON list of plugin fault points) makes the process SIGKILL itself
the first time it reaches one of them, the way a host dies in the middle of an operation.

    python -m tests.e2e.killable_daemons storage|snapshot|orchestrator|agent|...
"""

import asyncio
import json
import os
import signal
import sys

from plugins.sdk import faults
from services.daemons import EVERY_DAEMON, serve_daemons
from services.runtime.daemon import Settings


def arm_kill_points() -> None:
    """Replace `faults.point` by one that kills this process at the points named in `STRATA_E2E_KILL_AT`."""
    kill_at = set(json.loads(os.environ.get("STRATA_E2E_KILL_AT", "[]")))
    if not kill_at:
        return
    passing = faults.point

    async def point(name: str) -> None:
        if name in kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        await passing(name)

    faults.point = point


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in EVERY_DAEMON:
        sys.exit(f"usage: python -m tests.e2e.killable_daemons {'|'.join(EVERY_DAEMON)}")
    arm_kill_points()
    asyncio.run(serve_daemons([sys.argv[1]], Settings()))
