"""The coordinator as a process of its own, for the crash test: `python -m tests.e2e.sagas_worker ...`.

With `--crash before|after --at K`, it kills itself with SIGKILL in the K-th message it handles: just before
that unit of work commits, or just after it committed (before the broker got the ack). Duplicates (already in
the inbox) do not count: each crash point is a real step boundary of a saga.
"""

import argparse
import asyncio
import ctypes
import os
import signal
import sys

from bus.ports import UnitOfWork, UnitOfWorkContext, UnitOfWorkFactory
from bus.settings import BusSettings
from schemas import Envelope
from tests.sagas_stack import SagaNode


def crash_settings(namespace: str, amqp_url: str) -> BusSettings:
    """Settings shared by the test and the worker (queue arguments must match): many redeliveries allowed."""
    return BusSettings(
        amqp_url=amqp_url,
        namespace=namespace,
        retry_delays=(0.05, 0.05, 0.05),
        prefetch=1,
        delivery_limit=100,
        publish_outage_bound=15.0,
        reconnect_delay_max=0.5,
    )


class _CrashingContext:
    def __init__(self, inner: UnitOfWorkContext, units: "CrashingUnits", counted: bool) -> None:
        self._inner = inner
        self._units = units
        self._counted = counted
        self._unit: UnitOfWork | None = None

    async def __aenter__(self) -> UnitOfWork | None:
        self._unit = await self._inner.__aenter__()
        return self._unit

    async def __aexit__(self, *exc_info: object) -> None:
        crash_now = False
        if self._counted and self._unit is not None and exc_info[0] is None:
            self._units.handled += 1
            crash_now = self._units.handled == self._units.at
        if crash_now and self._units.mode == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        await self._inner.__aexit__(*exc_info)
        if crash_now:
            os.kill(os.getpid(), signal.SIGKILL)


class CrashingUnits:
    """Units of work with a fault point at the K-th handled message."""

    def __init__(self, inner: UnitOfWorkFactory, mode: str, at: int) -> None:
        self.inner = inner
        self.mode = mode
        self.at = at
        self.handled = 0

    def begin(self, consumer: str, incoming: Envelope | None) -> _CrashingContext:
        return _CrashingContext(self.inner.begin(consumer, incoming), self, counted=incoming is not None)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its test process dies, so it never outlives it (prctl PDEATHSIG)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


async def main(arguments: argparse.Namespace) -> None:
    settings = crash_settings(arguments.namespace, arguments.amqp_url)
    node = await SagaNode.open(
        arguments.database_url,
        arguments.amqp_url,
        arguments.namespace,
        settings=settings,
        wrap_units=(lambda units: CrashingUnits(units, arguments.crash, arguments.at)) if arguments.crash else None,
    )
    await node.run_coordinator(prefetch=1)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--crash", choices=["before", "after"])
    parser.add_argument("--at", type=int, default=1)
    die_with_parent()
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
