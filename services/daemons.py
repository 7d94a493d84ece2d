"""Every daemon strata has: its name and the module that declares it (`DAEMON` in `services/<name>/bootstrap.py`).

Adding a daemon is a `bootstrap` module that declares it (see `services.runtime.daemon`) and one line here; then
`strata run NAME`, `strata up`, the demo, `strata topology apply` and the daemon tests take it. Importing this module
imports no daemon (the CLI lists the names without loading the services).
"""

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.daemon import Daemon, Settings

# In start order for `strata up`: the services that own state, then the coordinator, then the agent.
DECLARED: dict[str, str] = {
    "storage": "services.storage.bootstrap",
    "snapshot": "services.snapshot.bootstrap",
    "image": "services.image.bootstrap",
    "backup": "services.backup.bootstrap",
    "orchestrator": "services.orchestrator.bootstrap",
    "agent": "services.agent.bootstrap",
    "api": "services.api.bootstrap",
    "bridge": "services.bridge.bootstrap",
}
EVERY_DAEMON: tuple[str, ...] = tuple(DECLARED)
# Daemons that `strata up`, the demo and in-process stacks run only when the variable that configures them is set:
# the bridge needs CloudStack's exchange named (`strata run bridge` runs it with the default name).
WHEN_CONFIGURED: dict[str, str] = {"bridge": "STRATA_BRIDGE_EXCHANGE"}


def together(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The daemons `strata up` runs: every declared one, less those whose configuring variable is not set."""
    found = os.environ if environ is None else environ
    return tuple(name for name in EVERY_DAEMON if name not in WHEN_CONFIGURED or found.get(WHEN_CONFIGURED[name]))


def declared(name: str) -> "Daemon":
    """The daemon declared as `name`; raise InvalidArgument naming the choices if there is none."""
    from schemas.errors import InvalidArgument
    from services.runtime.daemon import Daemon

    if name not in DECLARED:
        raise InvalidArgument(f"no daemon named {name!r}; choose from {', '.join(EVERY_DAEMON)}", field="service")
    daemon = importlib.import_module(DECLARED[name]).DAEMON
    assert isinstance(daemon, Daemon), f"{DECLARED[name]}.DAEMON is not a Daemon"
    return daemon


def every_daemon() -> list["Daemon"]:
    """Every declared daemon, in start order."""
    return [declared(name) for name in EVERY_DAEMON]


def deployed(environ: Mapping[str, str] | None = None) -> list["Daemon"]:
    """The daemons whose queues the deployed topology holds (`strata topology apply`, every daemon at start): the ones
    `strata up` runs. One left out (the bridge without CloudStack's exchange) declares its queue when it first starts,
    so that no queue fills with events for a daemon that never runs."""
    return [declared(name) for name in together(environ)]


async def serve_daemons(names: Sequence[str], settings: "Settings", *, name: str | None = None) -> None:
    """Run the daemons `names` in this process until SIGTERM or SIGINT (`strata run`, `strata up`,
    `python -m services.NAME`). The deployed topology's queues are declared first (see `deployed`)."""
    from services.runtime.serve import serve

    daemons = [declared(each) for each in names]
    label = name or (daemons[0].label_in(settings) if len(daemons) == 1 else "up")
    await serve(daemons, settings, name=label, topology=deployed())
