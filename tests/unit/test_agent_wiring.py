"""The agent's wiring: its queues' bindings, its handler table, and how libvirt's answers are read."""

import libvirt
import pytest

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from plugins.registry import Registry
from schemas.agent import AgentCommand
from schemas.errors import FailedPrecondition, NotFound, StrataError
from schemas.snapshot import CreateSnapshotOnPool, DeleteSnapshotOnPool, RevertVolumeOnPool
from schemas.vm import DescribeVm, StartVm, StopVm
from services.agent.bootstrap import build_agent
from services.agent.handlers import COMMAND_HANDLERS
from services.agent.libvirt_hypervisor import LibvirtHypervisor, _disks, _translate
from services.runtime.sealing import SecretSealer

pytestmark = pytest.mark.unit


def test_the_handler_table_covers_the_snapshot_and_vm_agent_commands() -> None:
    for command in (CreateSnapshotOnPool, DeleteSnapshotOnPool, RevertVolumeOnPool, StopVm, StartVm, DescribeVm):
        assert command in COMMAND_HANDLERS
    assert all(issubclass(command, AgentCommand) for command in COMMAND_HANDLERS)


async def test_queues_bind_the_host_and_cluster_patterns(
    memory_transport: MemoryTransport, sealer: SecretSealer
) -> None:
    service = build_agent(
        memory_transport,
        MemoryUnitOfWorkFactory(Bus(memory_transport)),
        host="kvm1.lab",
        cluster="rack.2",
        hypervisor=LibvirtHypervisor("test:///default"),
        plugins=Registry(),
        sealer=sealer,
    )
    names = [consumer.name for consumer in service.consumers]
    patterns = [[binding.routing_key for binding in consumer.bindings()] for consumer in service.consumers]
    assert names == ["agent.kvm1.lab", "agent.cluster.rack.2"]
    assert patterns == [["agent.host.kvm1-lab.#"], ["agent.cluster.rack-2.#"]]


def test_disks_are_read_from_the_domain_xml_in_device_order() -> None:
    xml = """<domain><devices>
        <disk type='file'><source file='/p/b.qcow2'/><target dev='vdb'/></disk>
        <disk type='block'><source dev='/dev/sda'/><target dev='vda'/></disk>
        <disk type='file' device='cdrom'><target dev='hdc'/></disk>
    </devices></domain>"""
    assert [(disk.device, disk.source) for disk in _disks(xml)] == [("vda", "/dev/sda"), ("vdb", "/p/b.qcow2")]


def test_libvirt_errors_become_project_errors() -> None:
    connection = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError) as caught:
            connection.lookupByName("no-such-vm")
        assert isinstance(_translate(caught.value, "describe"), NotFound)
        domain = connection.lookupByName("test")
        if not domain.isActive():
            domain.create()
        with pytest.raises(libvirt.libvirtError) as again:
            domain.create()
        translated = _translate(again.value, "start")
        assert isinstance(translated, StrataError)
        assert translated.code in {FailedPrecondition.code, StrataError.code}
    finally:
        connection.close()
