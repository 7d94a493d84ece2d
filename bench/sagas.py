"""Benchmark of the saga engine: a 3-step saga against a no-op participant, on RabbitMQ and PostgreSQL.

Everything goes the durable way: start command -> coordinator (inbox, saga row, journal, outbox) -> relay ->
participant (inbox, outbox) -> relay -> coordinator ... three times. Phase 1 starts N sagas at once and measures
how many complete per second; phase 2 offers 50 sagas/s and measures the end-to-end latency (start published to
saga completed). The baseline, measured in the same run on the same servers and database, is a bare hand-written
3-step orchestration on aiormq and asyncpg with the same durability and the same processes (bench/sagas_bare.py):
N bare sagas started at once; the two take turns (twice each, the best of each counts) and `ratio_vs_bare` is
strata's sagas/s over the bare one's (target >= 0.6).

usage: python bench/sagas.py [N]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)
prints one JSON line: {"bench": "sagas", "sagas": N, "steps_per_saga": 3, "rounds": 2, "sagas_per_s": ...,
                       "p50_ms": ..., "p99_ms_at_50_per_s": ..., "bare_sagas_per_s": ..., "ratio_vs_bare": ...}
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as `python bench/sagas.py`, Python puts bench/ first on the path, where this very file would shadow the
# `sagas` package: the repository root goes there instead.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import asyncio  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402
from uuid import UUID, uuid4  # noqa: E402

import asyncpg  # noqa: E402
import structlog  # noqa: E402

from bench import sagas_bare  # noqa: E402
from bus.codec import encode  # noqa: E402
from bus.facade import Bus  # noqa: E402
from bus.ports import Handler, UnitOfWork  # noqa: E402
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate  # noqa: E402
from bus.rabbit import RabbitTransport  # noqa: E402
from bus.runtime import Consumer  # noqa: E402
from bus.settings import BusSettings  # noqa: E402
from sagas import SagaContext, SagaRegistry, saga  # noqa: E402
from sagas.coordinator import Coordinator  # noqa: E402
from sagas.participant import reply_success  # noqa: E402
from sagas.postgres_migrate import migrate_sagas  # noqa: E402
from sagas.postgres_store import PostgresSagaStore  # noqa: E402
from sagas.work import saga_id_for  # noqa: E402
from schemas import Command, Envelope, Event, Message, MessageRegistry, message  # noqa: E402
from schemas.sagas import StepFailed, StepSucceeded  # noqa: E402

AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
OFFERED_PER_S = 50
LATENCY_SAGAS = 250
ROUNDS = 2  # turns of the bare baseline and strata at full load
bench_messages = MessageRegistry()
bench_sagas = SagaRegistry()
for _model in (StepSucceeded, StepFailed):
    bench_messages.register(_model, _model.message_type, _model.message_version)


@message("bench.saga.run", into=bench_messages)
class RunBenchSaga(Command):
    """Start the bench saga."""

    n: int


@message("bench.saga.step", into=bench_messages)
class BenchStep(Command):
    """One no-op step."""

    n: int
    step: int


@message("bench.saga.done", into=bench_messages)
class BenchDone(Event):
    """The bench saga's result."""

    n: int


@saga("bench.three_steps", 1, into=bench_sagas)
async def three_steps(ctx: SagaContext, command: RunBenchSaga) -> BenchDone:
    """Three steps in a row, each with a compensation (never needed)."""
    for step in range(3):
        await ctx.step(BenchStep(n=command.n, step=step), compensate=BenchStep(n=command.n, step=-step))
    return BenchDone(n=command.n)


async def no_op(command: BenchStep, envelope: Envelope, uow: UnitOfWork) -> None:
    """The participant: nothing to do but answer, in its unit of work (inbox and outbox)."""
    reply_success(uow, envelope, producer="bench-participant")


async def create_database() -> tuple[str, str]:
    name = f"strata_bench_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def wait_for(pool: asyncpg.Pool, sagas: set[UUID], timeout: float) -> list[tuple[UUID, float]]:
    """When each of `sagas` completed (epoch seconds), once all have."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await pool.fetch(
            "SELECT saga_id, extract(epoch FROM updated_at) AS ended FROM sagas.instances "
            "WHERE status = 'COMPLETED' AND saga_id = ANY($1::uuid[])",
            list(sagas),
        )
        if len(rows) >= len(sagas):
            return [(row["saga_id"], float(row["ended"])) for row in rows]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: only {len(rows)} of {len(sagas)} sagas completed within {timeout}s")
        await asyncio.sleep(0.05)


async def serve(role: str, database_url: str, namespace: str) -> None:
    """One worker process: a coordinator or the participant (or a bare one), with its own pool, until killed."""
    if role.startswith("bare-"):
        await sagas_bare.BareWorker(AMQP_URL, database_url, namespace, role.removeprefix("bare-")).start()
        print("ready", flush=True)
        await asyncio.Event().wait()
    transport = RabbitTransport(BusSettings(amqp_url=AMQP_URL, namespace=namespace), purpose=f"bench-{role}")
    await transport.start()
    pool = await create_pool(database_url, min_size=4, max_size=12)
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    relay = OutboxRelay(
        pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.5), wakes=units.wakes
    )
    await relay.start()
    if role == "coordinator":
        await Coordinator(
            transport, units, PostgresSagaStore(pool), sagas=bench_sagas, messages=bench_messages, prefetch=64
        ).start()
    else:
        handlers: dict[type[Message], Handler] = {BenchStep: no_op}
        await Consumer(
            transport, units, name="participant", handlers=handlers, prefetch=64, messages=bench_messages
        ).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def start_workers(database_url: str, namespace: str, *, bare: bool = False) -> list[asyncio.subprocess.Process]:
    """Two coordinator replicas and the participant, each a process of its own (the machine has two cores)."""
    workers = []
    roles = ("bare-orchestrator", "bare-orchestrator", "bare-participant") if bare else ("coordinator",) * 2
    for role in roles if bare else (*roles, "participant"):
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", role, database_url, namespace, stdout=asyncio.subprocess.PIPE
        )
        assert worker.stdout is not None
        if (await asyncio.wait_for(worker.stdout.readline(), timeout=60)).strip() != b"ready":
            raise SystemExit(f"bench: the {role} worker did not start")
        workers.append(worker)
    return workers


async def stop_workers(workers: list[asyncio.subprocess.Process]) -> None:
    for worker in workers:
        worker.kill()
        await worker.wait()
    workers.clear()


async def full_load(bus: Bus, pool: asyncpg.Pool, n: int, first: int) -> float:
    """Start `n` sagas at once; return sagas per second, from the first start to the last completion."""
    envelopes = [Envelope.wrap(RunBenchSaga(n=first + i), producer="bench") for i in range(n)]
    started_at = time.time()
    await bus.publish_many(envelopes)
    done = await wait_for(pool, {saga_id_for(envelope.message_id) for envelope in envelopes}, timeout=300)
    return n / (max(ended for _, ended in done) - started_at)


async def paced(bus: Bus, pool: asyncpg.Pool, first: int) -> tuple[float, float]:
    """Offer 50 sagas/s; return the p50 and p99 latency (ms) from start published to saga completed."""
    phase_two = time.time()
    offered: dict[UUID, float] = {}
    for i in range(LATENCY_SAGAS):
        envelope = Envelope.wrap(RunBenchSaga(n=first + i), producer="bench")
        offered[saga_id_for(envelope.message_id)] = time.time()
        await bus.publish(envelope)
        await asyncio.sleep(max(0.0, phase_two + (i + 1) / OFFERED_PER_S - time.time()))
    done = await wait_for(pool, set(offered), timeout=120)
    latencies = sorted((ended - offered[saga_id]) * 1000 for saga_id, ended in done)
    return statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


async def measure(n: int) -> tuple[float, float, float, float]:
    """Return (sagas per second at full load, p50 and p99 ms at 50 sagas/s offered, bare sagas per second).

    The bare baseline and strata take turns, ROUNDS times each, and the best of each counts: on a shared machine
    the load changes from one minute to the next, and turns keep either from having only the quiet minutes.
    """
    name, database_url = await create_database()
    namespace = f"bench{uuid4().hex[:8]}"
    transport = RabbitTransport(BusSettings(amqp_url=AMQP_URL, namespace=namespace), purpose="bench")
    await transport.start()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    workers: list[asyncio.subprocess.Process] = []
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
            await migrate_sagas(connection)
        await sagas_bare.prepare(database_url)
        bus = Bus(transport, messages=bench_messages)
        bare_runs, strata_runs = [], []
        for turn in range(ROUNDS):
            workers = await start_workers(database_url, namespace, bare=True)
            bare_runs.append(await sagas_bare.run_sagas(AMQP_URL, database_url, namespace, n, timeout=300))
            await stop_workers(workers)
            workers = await start_workers(database_url, namespace)
            strata_runs.append(await full_load(bus, pool, n, first=turn * n))
            if turn < ROUNDS - 1:
                await stop_workers(workers)
        p50, p99 = await paced(bus, pool, first=ROUNDS * n)
        return max(strata_runs), p50, p99, max(bare_runs)
    finally:
        await stop_workers(workers)
        await pool.close()
        await transport.close()
        await transport.delete_namespace([f"{namespace}.participant", f"{namespace}.saga-coordinator"])
        await sagas_bare.delete_queues(AMQP_URL, namespace)
        await drop_database(name)


def main() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        # A worker dies with the bench (prctl PDEATHSIG): it must never outlive it and hold the namespace open.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
        asyncio.run(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    sagas_per_s, p50, p99, bare_per_s = asyncio.run(measure(n))
    print(
        json.dumps(
            {
                "bench": "sagas",
                "sagas": n,
                "steps_per_saga": 3,
                "rounds": ROUNDS,
                "sagas_per_s": round(sagas_per_s, 1),
                "p50_ms": round(p50, 1),
                "p99_ms_at_50_per_s": round(p99, 1),
                "bare_sagas_per_s": round(bare_per_s, 1),
                "ratio_vs_bare": round(sagas_per_s / bare_per_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
