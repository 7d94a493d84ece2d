"""Graceful shutdown on real signals: stop intake, let in-flight work finish (or cancel it after the grace), close."""

import asyncio
import os
import signal

import pytest

from services.runtime.shutdown import GracefulShutdown

pytestmark = pytest.mark.integration


async def test_a_signal_runs_the_steps_in_order_and_lets_in_flight_work_finish() -> None:
    shutdown = GracefulShutdown(grace_seconds=10)
    order: list[str] = []
    started = asyncio.Event()
    finish = asyncio.Event()

    async def handle_message() -> None:
        with shutdown.in_flight():
            started.set()
            await finish.wait()
            order.append("in-flight finished")

    async def cancel_consumer() -> None:
        order.append("intake stopped")
        finish.set()  # the message being handled completes after the intake stopped

    async def close(name: str) -> None:
        order.append(f"closed {name}")

    shutdown.on_stop_intake("consumer", cancel_consumer)
    shutdown.on_close("database", lambda: close("database"))
    shutdown.on_close("broker", lambda: close("broker"))
    shutdown.install_signal_handlers()
    worker = asyncio.create_task(handle_message())
    await started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    report = await asyncio.wait_for(shutdown.run(), 10)
    await worker
    assert report.reason == "SIGTERM"
    assert (report.cancelled, report.errors) == (0, [])
    assert order == ["intake stopped", "in-flight finished", "closed broker", "closed database"]
    assert shutdown.requested


async def test_work_past_the_grace_period_is_cancelled() -> None:
    shutdown = GracefulShutdown(grace_seconds=0.2)
    cancelled = asyncio.Event()

    async def endless() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = shutdown.spawn(endless(), name="endless")
    shutdown.request("test")
    report = await asyncio.wait_for(shutdown.run(), 10)
    assert report.cancelled == 1
    assert cancelled.is_set()
    assert task.cancelled()


async def test_a_second_signal_skips_the_wait() -> None:
    shutdown = GracefulShutdown(grace_seconds=3600)
    shutdown.install_signal_handlers((signal.SIGINT,))
    shutdown.spawn(asyncio.Event().wait())
    os.kill(os.getpid(), signal.SIGINT)
    reason = await asyncio.wait_for(shutdown.wait(), 10)
    running = asyncio.create_task(shutdown.run())
    os.kill(os.getpid(), signal.SIGINT)
    report = await asyncio.wait_for(running, 10)
    assert (reason, report.cancelled) == ("SIGINT", 1)


async def test_a_failing_step_is_reported_and_the_others_still_run() -> None:
    shutdown = GracefulShutdown(grace_seconds=1)
    closed: list[str] = []

    async def broken() -> None:
        raise ConnectionResetError("amqp://guest:secret@broker gone")

    async def close_pool() -> None:
        closed.append("pool")

    shutdown.on_stop_intake("consumer", broken)
    shutdown.on_close("pool", close_pool)
    shutdown.on_close("channel", broken)
    shutdown.request()
    report = await asyncio.wait_for(shutdown.run(), 10)
    assert report.errors == ["consumer: ConnectionResetError", "channel: ConnectionResetError"]
    assert closed == ["pool"]


async def test_finished_work_leaves_nothing_to_wait_for() -> None:
    shutdown = GracefulShutdown(grace_seconds=3600)

    async def quick() -> str:
        return "done"

    done = await shutdown.spawn(quick())
    with shutdown.in_flight(), shutdown.in_flight():
        pass
    shutdown.request()
    report = await asyncio.wait_for(shutdown.run(), 10)
    assert (done, report.cancelled) == ("done", 0)


async def test_signal_handlers_are_removed_after_the_shutdown() -> None:
    shutdown = GracefulShutdown(grace_seconds=1)
    shutdown.install_signal_handlers((signal.SIGUSR1,))
    shutdown.request()
    await asyncio.wait_for(shutdown.run(), 10)
    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
