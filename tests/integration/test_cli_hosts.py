"""The host registry as an operator meets it: `strata host list` and `strata vm list` from the agents' heartbeats, and
a mistyped host or cluster refused at once, the known ones listed, leaving no pool, no saga and no lock.

The services run in this test's process (services/stack, as `strata up` runs them); each `strata` command is a
process of its own. The in-process agent drives libvirt's test:///default, whose host runs one VM named `test`.
"""

import uuid
from pathlib import Path

import asyncpg

from bus.facade import Bus
from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Envelope
from schemas.hosts import HostHeartbeat, HostIdentity
from tests.helpers import assert_eventually
from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json

KNOWN = f"known hosts: {HOST}"


async def test_host_list_shows_the_agents_host_up_with_its_vms(strata_env: dict[str, str]) -> None:
    hosts = await strata_json(strata_env, "host", "list")
    assert [(h["identity"]["host"], h["identity"]["cluster_id"], h["state"]) for h in hosts] == [(HOST, CLUSTER, "Up")]
    assert hosts[0]["identity"]["libvirt_uri"] == "test:///default"
    assert "test" in [vm["name"] for vm in hosts[0]["vms"]]

    code, output = await strata(strata_env, "host", "list")
    assert code == 0, output
    assert HOST in output
    assert "Up" in output


async def test_a_host_whose_agent_misses_its_heartbeats_is_disconnected(
    strata_env: dict[str, str], amqp_url: str, namespace: str
) -> None:
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="gone-agent")
    await transport.start()
    try:  # an agent that beat once, promising the next within 0.05 s, and then went away
        identity = HostIdentity(host="gone-host", cluster_id="gone", hypervisor="kvm", libvirt_uri="x", version="0")
        await Bus(transport).publish(Envelope.wrap(HostHeartbeat(identity=identity, interval_seconds=0.05)))
    finally:
        await transport.close()

    async def disconnected() -> bool:
        hosts = await strata_json(strata_env, "host", "list")
        return {host["identity"]["host"]: host["state"] for host in hosts} == {HOST: "Up", "gone-host": "Disconnected"}

    await assert_eventually(disconnected, timeout=60, what="gone-host Disconnected, the agent's host Up")
    code, output = await strata(strata_env, "host", "list")
    assert code == 0, output
    assert "Disconnected" in output


async def test_vm_list_shows_the_vms_the_agents_see(strata_env: dict[str, str]) -> None:
    listed = await strata_json(strata_env, "vm", "list")
    test_vm = next(vm for vm in listed["vms"] if vm["name"] == "test")
    assert (test_vm["host"], test_vm["power_state"]) == (HOST, "running")

    code, output = await strata(strata_env, "vm", "list")
    assert code == 0, output
    assert "test" in output
    assert "running" in output

    # A VM is named as `vm list` shows it: the name stands for its id.
    code, output = await strata(strata_env, "vm", "snapshot", "test", "--name", "s1")
    assert code == 1, output
    assert f"the storage service knows no volume of VM {test_vm['vm_id']}" in output
    pair = f"{uuid.uuid4()}={uuid.uuid4()}"
    code, output = await strata(strata_env, "vm", "revert", "nope", str(uuid.uuid4()), "--pair", pair)
    assert code == 1, output
    assert "no registered host knows a VM named 'nope'" in output


async def test_a_mistyped_host_or_cluster_is_refused_at_once_and_leaves_nothing_and_a_host_s_cluster_is_known(
    strata_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    env = strata_env
    pool = ["pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", "--scope", "host"]

    code, output = await strata(env, *pool, "--host", "cli-hots", "--cluster", CLUSTER)
    assert code == 1, output
    assert "InvalidArgument: unknown host 'cli-hots'; " + KNOWN in output

    code, output = await strata(env, *pool, "--host", HOST, "--cluster", "cli-clutser")
    assert code == 1, output
    assert f"unknown cluster 'cli-clutser'; known clusters: {CLUSTER}" in output

    code, output = await strata(env, "volume", "create", "v1", "16M", "--host", "cli-hots")
    assert code == 1, output
    assert KNOWN in output

    vm, pair = str(uuid.uuid4()), f"{uuid.uuid4()}={uuid.uuid4()}"
    code, output = await strata(env, "vm", "revert", vm, str(uuid.uuid4()), "--host", "cli-hots", "--pair", pair)
    assert code == 1, output
    assert KNOWN in output

    code, output = await strata(env, "vm", "revert", vm, str(uuid.uuid4()), "--pair", pair)
    assert code == 1, output
    assert f"no registered host knows VM {vm}" in output

    assert await strata_json(env, "pool", "list", "--all") == []
    assert await strata_json(env, "volume", "list", "--all") == []
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM sagas.instances") == 0
        assert await connection.fetchval("SELECT count(*) FROM sagas.locks") == 0
    finally:
        await connection.close()

    code, output = await strata(env, *pool, "--host", "cli-hots")
    assert code == 1, output
    assert "InvalidArgument: unknown host 'cli-hots'; " + KNOWN in output
    added = await strata_json(env, *pool, "--host", HOST)  # no --cluster: the host's own
    assert (added["host"], added["cluster_id"]) == (HOST, CLUSTER)


async def test_a_vm_snapshot_is_taken_and_reverted_to_by_its_name(strata_env: dict[str, str], tmp_path: Path) -> None:
    """What `vm snapshot` says is what an operator types next: the volumes by name, and the revert by the VM's and
    the VM snapshot's names; a name nobody took is refused, naming it."""
    env = strata_env
    await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", "--host", HOST)
    await strata_json(env, "volume", "create", "root-1", "16M", "--vm", "test")
    code, output = await strata(env, "volume", "list", "--vm", "test")  # the VM by its name, shown by its name
    assert code == 0, output
    assert next(line for line in output.splitlines() if "root-1" in line).split()[-1] == "test"
    code, output = await strata(env, "vm", "snapshot", "test", "--name", "before-upgrade")
    assert code == 0, output
    assert "volume root-1 → snapshot" in output
    assert "revert with: strata vm revert test before-upgrade" in output
    code, output = await strata(env, "vm", "revert", "test", "before-upgrade")
    assert code == 0, output
    assert "VM test reverted to VM snapshot before-upgrade (" in output
    code, output = await strata(env, "vm", "revert", "test", "after-upgrade")
    assert code == 1, output
    assert "no VM snapshot named 'after-upgrade'" in output
