"""Normal use logs nothing above debug for what is expected: an event of a reply type that no saga sent."""

import uuid

import pytest
from structlog.testing import capture_logs

from sagas.engine import SagaEngine
from sagas.memory_store import MemorySagaStore
from schemas import Envelope
from schemas.snapshot import SnapshotCreated, SnapshotKind

pytestmark = pytest.mark.unit


async def test_a_reply_type_event_sent_outside_any_saga_is_ignored_at_debug() -> None:
    # A snapshot an operator took by hand: snapshot.created, which the coordinator also hears as a step's reply.
    created = SnapshotCreated(
        snapshot_id=uuid.uuid4(), volume_id=uuid.uuid4(), kind=SnapshotKind.FULL, size_bytes=1, physical_size_bytes=1
    )
    store = MemorySagaStore()
    with capture_logs() as logs:
        async with store.session() as session:
            await SagaEngine().on_reply(session, lambda envelope: None, Envelope.wrap(created))
    ignored = [entry for entry in logs if entry["event"] == "reply without saga id or step ignored"]
    assert [entry["log_level"] for entry in ignored] == ["debug"]
