"""What is expected in normal use stays out of the operator's way: libvirt's own error printer goes into the log
(not a plain line on stderr amid the JSON), and a reply whose requester gave up is dropped at debug."""

import uuid
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from bus.ports import WireMessage
from bus.rabbit import RabbitTransport
from schemas.errors import NotFound
from services.agent.libvirt_hypervisor import LibvirtHypervisor

pytestmark = pytest.mark.integration


async def test_libvirt_s_error_printer_goes_into_the_log_not_onto_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    hypervisor = LibvirtHypervisor("test:///default")
    try:
        with capture_logs() as logs, pytest.raises(NotFound):
            await hypervisor.describe_vm(uuid.uuid4())
    finally:
        await hypervisor.close()
    assert "libvirt:" not in capfd.readouterr().err
    reported = [entry for entry in logs if entry["event"] == "libvirt reported an error"]
    assert reported
    assert reported[0]["log_level"] == "debug"


async def test_a_reply_to_a_requester_that_is_gone_is_dropped_at_debug(rabbit_transport: RabbitTransport) -> None:
    gone = WireMessage(
        body=b"{}",
        message_id=str(uuid.uuid4()),
        type="bustest.ask",
        headers={"version": 1},
        correlation_id=str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        app_id="test",
        reply_to=f"amq.gen-{uuid.uuid4().hex}",  # no such queue: the requester went away with it
    )
    answer = WireMessage(
        body=b"{}",
        message_id=str(uuid.uuid4()),
        type="bustest.answer",
        headers={"version": 1},
        correlation_id=gone.correlation_id,
        timestamp=datetime.now(UTC),
        app_id="test",
    )
    with capture_logs() as logs:
        await rabbit_transport.reply(gone, answer)
    dropped = [entry for entry in logs if entry["event"] == "requester is gone; reply dropped"]
    assert [entry["log_level"] for entry in dropped] == ["debug"]
