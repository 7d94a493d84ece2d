"""The sandbox's data plane: the agent's volume commands run by the current agent code on the recorded pools' plugins,
each pool on a temporary directory, so that their replies come from this code rather than from the recording.

A pool is inside the sandbox when the export holds its plugin's configuration (`pool.add`, `agent.pool.attach`;
masked, as every export's) and that plugin opens on a directory: its `path` is replaced by a temporary directory of
the pool's own, its other settings left to their defaults. The sandbox then attaches it as the agent does
(`PoolDrivers.attach`: the plugin's `add_pool`) and hands the saga's commands for it to the agent's own handlers
(`services.agent.handlers`), with the agent's intent, fencing and operation rows in the sandbox's database.

Inside are the commands whose answer follows from the command and the volume's existence: create (a blank volume),
resize and delete a volume. A volume a command expects is made first (sparse, of the size the recording gives it).
What measures or moves recorded data (copies, coalesce, backups, snapshots, stats) and what the hypervisor answers
(VM stop, start, describe) stays outside, answered from the recording: a temporary directory does not hold that
data, nor a sandbox the recorded VMs. Without a database (`--in-memory`) every reply comes from the recording.
"""

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.postgres.errors import translated_errors
from bus.postgres.pool import Pool
from plugins.registry import Registry, load_plugins
from plugins.sdk.protocols import PrimaryStorage
from schemas import Envelope
from schemas.agent import AgentCommand, CreateVolumeOnPool, DeleteVolumeOnPool, ResizeVolumeOnPool
from schemas.errors import FailedPrecondition, NotFound, StrataError, Transient
from schemas.redact import REDACTED
from services.agent.answering import Agent
from services.agent.drivers import PoolDrivers
from services.agent.handlers import COMMAND_HANDLERS
from services.agent.operations import StagedUnit
from services.agent.ports import VmDescription
from services.agent.schema import migrate_agent
from services.replay.export_format import Export
from services.runtime.sealing import KEY_BYTES, SecretSealer

INSIDE = (CreateVolumeOnPool, ResizeVolumeOnPool, DeleteVolumeOnPool)
"""The agent commands the sandbox runs on its own pools (see the module)."""
_POOL_CONFIGS = ("pool.add", "agent.pool.attach")  # an export's records of how its pools were configured
_BLANK_SIZE = 1 << 20  # a volume the recording gives no size to
_ATTEMPTS = 3  # a transient failure of the sandbox's agent, tried again


@dataclass
class PoolPlan:
    """A recorded pool, and how the sandbox starts it: its plugin on a temporary directory (or why it cannot)."""

    pool_id: UUID
    plugin: str
    config: dict[str, Any]
    attached: bool = False
    outside: str = ""
    """Why the pool stays outside the sandbox (empty: inside)."""


@dataclass
class LiveCall:
    """One data-plane command the sandbox's agent ran, and how it answered."""

    step: int | None
    command: str
    pool_id: UUID
    plugin: str
    answer: str

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step is not None else ""
        return f"{where}{self.command} on pool {self.pool_id} ({self.plugin}, temporary directory) -> {self.answer}"


class _OutsideHypervisor:
    """The hypervisor stays outside the sandbox: the recorded VMs are not here (their replies come from the record)."""

    uri = "sandbox:///outside"

    async def describe_vm(self, vm_id: UUID) -> VmDescription:
        raise FailedPrecondition("the sandbox runs no hypervisor", field="vm_id")

    async def list_vms(self) -> tuple[VmDescription, ...]:
        return ()

    async def stop_vm(self, vm_id: UUID, *, force: bool = False, grace_seconds: float = 60.0) -> bool:
        raise FailedPrecondition("the sandbox runs no hypervisor", field="vm_id")

    async def start_vm(self, vm_id: UUID) -> bool:
        raise FailedPrecondition("the sandbox runs no hypervisor", field="vm_id")

    async def close(self) -> None:
        return None


@dataclass
class DataPlane:
    """The recorded pools on temporary directories under `root`, and an agent per recorded host that works on them."""

    database: Pool
    root: Path
    pools: dict[UUID, PoolPlan]
    sizes: dict[UUID, int]
    plugins: Registry = field(default_factory=load_plugins)
    calls: list[LiveCall] = field(default_factory=list)
    _drivers: PoolDrivers | None = None
    _agents: dict[str, Agent] = field(default_factory=dict)
    _ready: asyncio.Lock = field(default_factory=asyncio.Lock)
    _migrated: bool = False

    @classmethod
    def of(cls, database: Pool, export: Export, root: Path) -> "DataPlane":
        """The plan for `export`'s pools (nothing is started before a command needs it)."""
        pools: dict[UUID, PoolPlan] = {}
        for record in export.plugin_configs:
            if record.get("type") not in _POOL_CONFIGS or not isinstance(record.get("config"), dict):
                continue
            for name in record.get("names") or []:
                pool_id = UUID(str(name))
                if record["type"] == "agent.pool.attach" or pool_id not in pools:  # the agent's own record first
                    pools[pool_id] = PoolPlan(pool_id, str(record.get("plugin")), record["config"])
        return cls(database, root, pools, _recorded_sizes(export))

    def takes(self, envelope: Envelope) -> bool:
        """True if `envelope` is a command the sandbox's agent answers (its pool is one the export configures)."""
        command = envelope.payload
        if not isinstance(command, INSIDE) or (isinstance(command, CreateVolumeOnPool) and command.base is not None):
            return False
        plan = self.pools.get(command.pool_id)
        return plan is not None and not plan.outside

    async def answer(self, envelope: Envelope) -> list[Envelope]:
        """Run the command with the agent's handler on the pool's plugin; its answers (none: the pool stayed
        outside, see `PoolPlan.outside`, and the recorded replies stand)."""
        command = envelope.payload
        assert isinstance(command, INSIDE)
        plan = self.pools[command.pool_id]
        async with self._ready:
            agent = await self._agent(command)
            driver = await self._attached(plan, agent)
        if driver is None:
            return []
        if not isinstance(command, CreateVolumeOnPool):
            await _ensure_volume(driver, command.volume_id, self.sizes.get(command.volume_id, _BLANK_SIZE))
        unit = await _handled(envelope, agent, self.database)
        with translated_errors():
            async with self.database.acquire() as connection, connection.transaction():
                for statement, arguments in unit.deferred:
                    await connection.execute(statement, *arguments)
        answers = ", ".join(reply.type for reply in unit.emitted) or "nothing"
        self.calls.append(LiveCall(envelope.step, envelope.type, plan.pool_id, plan.plugin, answers))
        return unit.emitted

    def pool_root(self, pool_id: UUID) -> Path:
        """The temporary directory a pool's plugin works in."""
        return self.root / str(pool_id)

    async def _agent(self, command: AgentCommand) -> Agent:
        """The agent of the command's host (its replies name it, as the recorded ones do)."""
        if not self._migrated:
            with translated_errors():
                async with self.database.acquire() as connection:
                    await migrate_agent(connection)
            self._migrated = True
        if self._drivers is None:
            self._drivers = PoolDrivers(self.plugins, SecretSealer(os.urandom(KEY_BYTES), source="the sandbox's key"))
        host = command.host or f"cluster-{command.cluster_id}"
        if host not in self._agents:
            cluster = str(command.cluster_id) if command.cluster_id is not None else "sandbox"
            self._agents[host] = Agent(host, cluster, self._drivers, _OutsideHypervisor())
        return self._agents[host]

    async def _attached(self, plan: PoolPlan, agent: Agent) -> PrimaryStorage | None:
        """The pool's driver, attached on its temporary directory the first time; None if it cannot be."""
        if plan.outside:
            return None
        assert self._drivers is not None
        if plan.attached:
            return await self._drivers.primary(self.database, plan.pool_id)
        config = {key: value for key, value in plan.config.items() if value != REDACTED}
        config["path"] = str(self.pool_root(plan.pool_id))
        self.pool_root(plan.pool_id).mkdir(parents=True, exist_ok=True)
        try:
            if "path" not in self.plugins.get(plan.plugin).manifest.config_model.model_fields:
                raise FailedPrecondition(f"plugin {plan.plugin!r} does not keep its pool in a directory")
            with translated_errors():
                driver = await self._drivers.attach(self.database, plan.pool_id, plan.plugin, config, agent.host)
        except StrataError as error:
            plan.outside = f"pool {plan.pool_id} ({plan.plugin}) stays outside: {error.message}"
            return None
        plan.attached = True
        return driver

    async def close(self) -> None:
        """Close the plugins' drivers and remove the temporary directories."""
        if self._drivers is not None:
            await self._drivers.close()
        await asyncio.to_thread(shutil.rmtree, self.root, True)


async def _handled(envelope: Envelope, agent: Agent, database: Pool) -> StagedUnit:
    """Run the agent's handler for `envelope` as its consumer would: a transient failure is tried again (the bus
    would redeliver it), a few times."""
    for attempt in range(1, _ATTEMPTS + 1):
        unit = StagedUnit(database, f"sandbox.agent.{agent.host}")
        try:
            await COMMAND_HANDLERS[type(envelope.payload)](envelope.payload, envelope, unit, agent)
        except Transient as error:
            if attempt == _ATTEMPTS:
                raise StrataError(f"{envelope.type} failed {_ATTEMPTS} times in the sandbox: {error.message}") from None
            continue
        return unit
    raise AssertionError("unreachable")


def configures_pools(export: Export) -> bool:
    """True if `export` holds the configuration of a pool (else the sandbox has no data plane to start)."""
    return any(record.get("type") in _POOL_CONFIGS for record in export.plugin_configs)


def temporary_root() -> Path:
    """A new temporary directory for a sandbox's pools."""
    return Path(tempfile.mkdtemp(prefix="strata-sandbox-"))


async def _ensure_volume(driver: PrimaryStorage, volume_id: UUID, size_bytes: int) -> None:
    """Make the volume a command expects, if the pool lacks it: sparse, of its recorded size."""
    try:
        await driver.get_volume(str(volume_id))
    except NotFound:
        await driver.create_volume(str(volume_id), size_bytes)


def _recorded_sizes(export: Export) -> dict[UUID, int]:
    """Each volume's size as the recording last gave it (a payload naming the volume with its `size_bytes`)."""
    sizes: dict[UUID, int] = {}
    for message in export.messages:
        payload = message.payload()
        volume_id, size = payload.get("volume_id"), payload.get("size_bytes")
        if isinstance(volume_id, str) and isinstance(size, int) and size > 0:
            try:
                sizes[UUID(volume_id)] = size
            except ValueError:
                continue
    return sizes


def path_twins(live: Any, recorded: Any, root: str) -> dict[str, str]:  # JSON payloads of any shape
    """The paths under the sandbox's `root` in a live answer mapped to the recorded paths at the same fields that end
    the same way (a volume's locator: the pool's directory differs, what is under it must not)."""
    if isinstance(live, dict) and isinstance(recorded, dict):
        return {
            k: v for key in live.keys() & recorded.keys() for k, v in path_twins(live[key], recorded[key], root).items()
        }
    if isinstance(live, list) and isinstance(recorded, list):
        return {k: v for pair in zip(live, recorded, strict=False) for k, v in path_twins(*pair, root).items()}
    if isinstance(live, str) and isinstance(recorded, str) and live.startswith(root + os.sep):
        under = live[len(root) :].split(os.sep, 2)[-1]  # what follows the pool's own directory
        if recorded.endswith(os.sep + under):
            return {live: recorded}
    return {}
