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
from bus.postgres import PostgresUnitOfWorkFactory
from bus.settings import BusSettings
from sagas.postgres_units import SagaUnitOfWork, SagaUnitOfWorkFactory
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
    def __init__(
        self, inner: UnitOfWorkContext, units: "CrashingUnits", consumer: str, incoming: Envelope | None
    ) -> None:
        self._inner = inner
        self._units = units
        self._consumer = consumer
        self._incoming = incoming
        self._unit: UnitOfWork | None = None

    @property
    def duplicate(self) -> bool:
        return self._inner.duplicate

    async def __aenter__(self) -> UnitOfWork | None:
        self._unit = await self._inner.__aenter__()
        return self._unit

    async def _duplicate(self) -> bool:
        """A lazily begun unit learns that its message is a duplicate only when it commits: ask the inbox now."""
        unit, incoming = self._unit, self._incoming
        if unit is None or incoming is None:
            return True
        if not isinstance(unit, SagaUnitOfWork) or unit.begun:
            return isinstance(unit, SagaUnitOfWork) and unit.duplicate
        seen = await unit.connection.fetchval(
            "SELECT count(*) FROM bus.inbox WHERE consumer = $1 AND message_id = $2",
            self._consumer,
            incoming.message_id,
        )
        return bool(seen)

    async def __aexit__(self, *exc_info: object) -> None:
        crash_now = False
        if exc_info[0] is None and not await self._duplicate():
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

    def begin(self, consumer: str, incoming: Envelope | None, *, lazy: bool = False) -> _CrashingContext:
        return _CrashingContext(self.inner.begin(consumer, incoming, lazy=lazy), self, consumer, incoming)


def lazy(units: UnitOfWorkFactory) -> SagaUnitOfWorkFactory:
    """The units the coordinator would choose itself, unwrapped (sagas.postgres_units): the crash points are then
    those of its one-round-trip commits, and of its locking path when it falls back to it."""
    assert isinstance(units, PostgresUnitOfWorkFactory)
    return SagaUnitOfWorkFactory.like(units)


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
        wrap_units=(lambda units: CrashingUnits(lazy(units), arguments.crash, arguments.at))
        if arguments.crash
        else None,
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
