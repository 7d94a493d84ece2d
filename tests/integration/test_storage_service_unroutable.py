"""A pool add to a cluster no agent serves (a typo) is refused once the outbox gives up, and leaves no pool Initial.

Before: the agent command was retried forever by the relay and the pool stayed Initial, not deletable.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

from bus.postgres import OutboxRelay, RelaySettings
from bus.rabbit import RabbitTransport
from schemas import Envelope
from schemas.storage import AddPool, PoolAddFailed, PoolScope, PoolState
from schemas.storage_queries import ListPools, PoolsListed
from tests.integration.storage_stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    opened = await Stack.open(database_url, amqp_url, namespace)
    # The outbox gives up on an unroutable command after a second here (a minute by default).
    await opened.relay.stop()
    quick = RelaySettings(poll_interval=0.1, backoff_initial=0.05, backoff_max=0.2, undeliverable_after=1.0)
    opened.relay = OutboxRelay(opened.pool, opened.transport, database_url=database_url, settings=quick)
    await opened.relay.start()
    await opened.start_agent("kvm1", "c1")
    await opened.start_storage()
    yield opened
    await opened.close()


async def test_a_pool_add_to_a_mistyped_cluster_is_refused_and_leaves_no_pool(stack: Stack, tmp_path: Path) -> None:
    assert isinstance(stack.transport, RabbitTransport)
    pool_id = uuid4()
    command = AddPool(
        pool_id=pool_id,
        name="typo",
        plugin="qcow2fs",
        config={"path": str(tmp_path)},
        scope=PoolScope.CLUSTER,
        cluster_id="c1-typo",
        zone_id=uuid4(),
        hypervisors=frozenset({"kvm"}),
    )
    failed = await stack.outcome(await stack.send(command), PoolAddFailed)
    assert failed.pool_id == pool_id
    assert "no queue takes" in failed.error.message
    reply = await stack.bus.request(Envelope.wrap(ListPools(pool_id=pool_id, include_removed=True)), timeout=10)
    assert isinstance(reply.payload, PoolsListed)
    assert [pool.state for pool in reply.payload.pools] == [PoolState.REMOVED]
