"""Every declared daemon's queues, as `strata topology apply` declares them, are exactly the queues its built
consumers take, with the same bindings: the declaration and the handler tables cannot drift apart. (An agent's
queues are its host's own, declared when it starts, so it declares none.)"""

from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.postgres.pool import Pool
from plugins.registry import Registry
from services.daemons import EVERY_DAEMON, declared
from services.runtime.daemon import Settings, Wiring

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", EVERY_DAEMON)
def test_the_declared_queues_are_the_queues_its_consumers_take(name: str, memory_transport: MemoryTransport) -> None:
    daemon = declared(name)
    wiring = Wiring(
        settings=Settings(),
        transport=memory_transport,
        units=MemoryUnitOfWorkFactory(Bus(memory_transport)),
        pool=cast(Pool, object()),  # built, never started: nothing reaches the database
        plugins=Registry(),
        metrics=CollectorRegistry(),
    )
    service = daemon.build(wiring)
    built = {consumer.name: sorted(map(str, consumer.bindings())) for consumer in service.consumers}
    assert built, f"{name} consumes no queue"
    if name == "agent":
        assert daemon.queues == ()
        return
    assert {queue.name: sorted(map(str, queue.bindings())) for queue in daemon.queues} == built
