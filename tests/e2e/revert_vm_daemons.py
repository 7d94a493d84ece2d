"""Run one daemon of the revert-VM e2e test as a process of its own, with its settings from `STRATA_*`:

    python -m tests.e2e.revert_vm_daemons storage|snapshot|orchestrator|agent

The same runner as `strata run <service>` (`services.daemons.serve_daemons`), without depending on the CLI.
"""

import asyncio
import sys

from services.daemons import EVERY_DAEMON, serve_daemons
from services.runtime.daemon import Settings

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in EVERY_DAEMON:
        sys.exit(f"usage: python -m tests.e2e.revert_vm_daemons {'|'.join(EVERY_DAEMON)}")
    asyncio.run(serve_daemons([sys.argv[1]], Settings()))
