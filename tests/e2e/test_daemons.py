"""Every declared daemon runs as an operator runs it: `strata run NAME` starts it through the one runner, it
reports healthy on /healthz (every check named and passing), and it stops cleanly on SIGTERM.

The list is `services.daemons.EVERY_DAEMON`: a daemon declared there is tested here without a line more.
"""

from collections.abc import AsyncIterator

import pytest

from services.daemons import EVERY_DAEMON, together
from tests.e2e.daemon_processes import DaemonProcess, daemon_env, remove_namespace

pytestmark = pytest.mark.e2e


@pytest.fixture
async def env(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[dict[str, str]]:
    yield daemon_env(database_url, amqp_url, namespace)
    await remove_namespace(amqp_url, namespace)


@pytest.mark.parametrize("name", EVERY_DAEMON)
async def test_each_daemon_starts_reports_healthy_and_stops_on_sigterm(name: str, env: dict[str, str]) -> None:
    daemon = await DaemonProcess.start(env, "run", name)
    try:
        status, health = await daemon.get("/healthz")
        assert status == 200, f"{health}\n{daemon.show_log()}"
        assert health["status"] == "ok"
        assert set(health["checks"].values()) == {"ok"}
        assert "database" in health["checks"]
        assert any(check.startswith("consumer ") for check in health["checks"]), health
        metrics_status, _ = await daemon.get("/metrics")
        assert metrics_status == 200
    finally:
        code = await daemon.terminate()
    assert code == 0, daemon.show_log()
    assert daemon.logged("shut down"), daemon.show_log()


async def test_up_runs_every_daemon_in_one_process(env: dict[str, str]) -> None:
    daemon = await DaemonProcess.start(env, "up")
    try:
        running = next(line for line in daemon.log if line.get("event") == "running")
        assert len(running["services"]) == len(together(env))
        status, health = await daemon.get("/healthz")
        assert status == 200, f"{health}\n{daemon.show_log()}"
        _, metrics = await daemon.get("/metrics")
        for family in (
            "strata_outbox_backlog",
            "strata_outbox_oldest_seconds",
            "strata_dead_letters",
            "strata_pool_capacity_bytes",
            "strata_sagas",
            "strata_plugin_call_seconds",
        ):
            assert f"# TYPE {family} " in metrics["text"], family
    finally:
        code = await daemon.terminate()
    assert code == 0, daemon.show_log()
