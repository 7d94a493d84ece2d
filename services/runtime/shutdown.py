"""Graceful shutdown: a stop signal -> stop taking work -> let in-flight work finish -> close, in that order.

A daemon registers what stops its intake (cancel the consumers) and what to close (connections, pools, the health
server), and runs its handlers inside `in_flight()` or as `spawn`ed tasks. On SIGTERM or SIGINT it stops the
intake, waits up to the grace period for in-flight work (unacked messages are redelivered anyway, so cutting
them short loses nothing but time), cancels what is left, and closes resources in reverse order of
registration. A second signal skips the wait. A failing step is logged and the sequence goes on: one broken
close must not keep the others open.
"""

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

T = TypeVar("T")
Step = Callable[[], Awaitable[None]]
DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(slots=True)
class ShutdownReport:
    """What happened during a shutdown.

    Attributes:
        reason: What asked for it (`SIGTERM`, or what `request` was given).
        cancelled: In-flight tasks that had not finished within the grace period and were cancelled.
        errors: Steps that raised, as `step name: error class`.
    """

    reason: str
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


class GracefulShutdown:
    """Orders a daemon's shutdown. One instance per process, built by the bootstrap."""

    def __init__(self, *, grace_seconds: float = 30.0) -> None:
        self.grace_seconds = grace_seconds
        self._requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._reason = ""
        self._stop_intake: list[tuple[str, Step]] = []
        self._close: list[tuple[str, Step]] = []
        self._busy: dict[asyncio.Task[Any], int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._signals: list[signal.Signals] = []
        self._log = structlog.get_logger("strata.shutdown")

    @property
    def requested(self) -> bool:
        """Whether a shutdown was asked for (intake should not start new work)."""
        return self._requested.is_set()

    def install_signal_handlers(self, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS) -> None:
        """Turn `signals` into a shutdown request (a second one skips waiting for in-flight work)."""
        loop = asyncio.get_running_loop()
        for number in signals:
            loop.add_signal_handler(number, self.request, number.name)
            self._signals.append(number)

    def request(self, reason: str = "requested") -> None:
        """Ask for a shutdown; asking again while it runs hurries it."""
        if self._requested.is_set():
            self._hurry.set()
            return
        self._reason = reason
        self._requested.set()

    def on_stop_intake(self, name: str, step: Step) -> None:
        """Run `step` first when shutting down: stop taking new work (cancel a consumer, close a listener)."""
        self._stop_intake.append((name, step))

    def on_close(self, name: str, step: Step) -> None:
        """Run `step` last when shutting down, in reverse order of registration (close what was opened)."""
        self._close.append((name, step))

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Mark the current task as doing work that a shutdown should let finish."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("in_flight() must run inside an asyncio task")
        self._busy[task] = self._busy.get(task, 0) + 1
        self._idle.clear()
        try:
            yield
        finally:
            self._release(task)

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str | None = None) -> "asyncio.Task[T]":
        """Run `work` as a task that a shutdown lets finish (and cancels after the grace period)."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._busy[task] = self._busy.get(task, 0) + 1
        self._idle.clear()
        task.add_done_callback(self._release)
        return task

    def _release(self, task: "asyncio.Task[Any]") -> None:
        count = self._busy.get(task, 0) - 1
        if count > 0:
            self._busy[task] = count
            return
        self._busy.pop(task, None)
        if not self._busy:
            self._idle.set()

    async def wait(self) -> str:
        """Wait until a shutdown is requested; return why."""
        await self._requested.wait()
        return self._reason

    async def run(self) -> ShutdownReport:
        """Wait for a request, then stop the intake, let in-flight work finish, cancel the rest, and close."""
        report = ShutdownReport(await self.wait())
        self._log.info("shutting down", reason=report.reason, in_flight=len(self._busy))
        for name, step in self._stop_intake:
            await self._run_step(name, step, report)
        report.cancelled = await self._drain()
        for name, step in reversed(self._close):
            await self._run_step(name, step, report)
        self._remove_signal_handlers()
        self._log.info("shut down", reason=report.reason, cancelled=report.cancelled, errors=report.errors)
        return report

    async def _drain(self) -> int:
        idle = asyncio.ensure_future(self._idle.wait())
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            await asyncio.wait({idle, hurry}, timeout=self.grace_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            hurry.cancel()
        left = [task for task in self._busy if not task.done() and task is not asyncio.current_task()]
        for task in left:
            task.cancel()
        if left:
            self._log.warning("cancelled unfinished work", tasks=len(left), grace_seconds=self.grace_seconds)
            await asyncio.gather(*left, return_exceptions=True)
        return len(left)

    async def _run_step(self, name: str, step: Step, report: ShutdownReport) -> None:
        try:
            await step()
        except Exception as error:
            report.errors.append(f"{name}: {type(error).__name__}")
            self._log.error("shutdown step failed", step=name, error_class=type(error).__name__)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for number in self._signals:
            loop.remove_signal_handler(number)
        self._signals.clear()
