"""Benchmark of the outbox path: handler transaction with emit -> relay -> confirmed publish -> consumed.

Each of `n` handler transactions records an inbox row, loads and changes a row of state and emits one event
(outbox and journal rows), as a service handling a command does. Relays publish the outbox to RabbitMQ with
confirms while the transactions run, and a consumer on a quorum queue decodes and acks every event. The figure is
messages per second from the first transaction to the last event consumed (the commands are built inside the
timed part, as the baseline builds its messages inside its own). It runs in a database of its own (created on the
server of `database_url`, dropped afterwards) and a RabbitMQ namespace of its own (deleted afterwards).

The handler comes in the two forms strata's services use (`HANDLERS`):
- `general` (the headline `outbox_msgs_per_s`, `ratio_vs_raw`): the form every handler may take, which reads and
  writes in its open transaction, as the storage service's handlers do: it loads its row `FOR UPDATE`, then updates
  it; its unit of work is four round trips (BEGIN and the inbox row, the read, the write, the outbox and journal
  rows and COMMIT).
- `deferred` (`outbox_deferred_msgs_per_s`): a handler marked `deferred_writes`, which reads nothing and writes its
  row with `uow.defer`, as only a read model can; its unit of work is one round trip.

The baseline, measured in the same run (interleaved rounds, best of each, because a neighbour's burst on a shared
machine hits one run, not one contender): ../shared/bench/raw_aiopika.py on a quorum queue.

Where the time goes, per message, so that a run says what its ratio is made of (`cpu_ms_per_msg`): for the general
form's best round, the CPU this process spent in the timed part (`process`: handlers, relay, consumer) and that of
the bench database's PostgreSQL backends (`postgres`, read from /proc when the server runs on this machine, null
otherwise); for the baseline, its process's CPU per message (`raw_aiopika_process`, the median of the rounds: a run of
n messages less a run of a few, so that its start-up does not count). The broker's CPU is not counted: it serves both
sides, and on a shared machine other work too. When the machine's cores are all busy, throughput follows the CPU a
message costs.

usage: python bench/outbox.py [N] [ROUNDS]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)
prints one JSON line: {"bench": "outbox", "n": N, "outbox_msgs_per_s": ..., "outbox_deferred_msgs_per_s": ...,
                       "raw_aiopika_msgs_per_s": ..., "ratio_vs_raw": ..., "deferred_ratio_vs_raw": ...,
                       "cpu_ms_per_msg": {"process": ..., "postgres": ..., "raw_aiopika_process": ...}}
"""

import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import asyncpg
import structlog

# Run as `python bench/outbox.py`, this folder heads sys.path, and bench/bus.py would shadow the `bus` package;
# the imports below come after this fix (E402).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from bus.codec import decode, encode  # noqa: E402
from bus.ports import Binding, Delivery  # noqa: E402
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate  # noqa: E402
from bus.rabbit import RabbitTransport  # noqa: E402
from bus.settings import BusSettings  # noqa: E402
from schemas import Command, Envelope, Event, message  # noqa: E402

HANDLER_CONCURRENCY = 16  # handler transactions in flight, as a service with prefetch 16 would have
POOL_SIZE = HANDLER_CONCURRENCY + 2  # one connection per handler in flight, and the relay's
RELAYS = 1  # one relay keeps up; each more one is another LISTEN connection woken by every commit
SHARED_BENCH = _HERE.parent.parent / "shared" / "bench"


@message("bench.outbox.record")
class RecordItem(Command):
    """The command each handler transaction handles."""

    item_id: UUID


@message("bench.outbox.recorded")
class ItemRecorded(Event):
    """The event each handler transaction emits."""

    item_id: UUID
    size_bytes: int
    pool_id: UUID


@asynccontextmanager
async def own_database(server_url: str) -> AsyncIterator[str]:
    """A database of the bench's own on the server of `server_url`, dropped afterwards (even with a straggler)."""
    name = f"strata_bench_outbox_{uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


HANDLERS = ("general", "deferred")


@dataclass(frozen=True, slots=True)
class Figures:
    """One measurement: messages per second, and CPU milliseconds per message of this process and of the bench
    database's PostgreSQL backends (None when the server's processes cannot be read here)."""

    msgs_per_s: float
    process_cpu_ms: float
    postgres_cpu_ms: float | None


async def measure_outbox(n: int, amqp_url: str, database_url: str, handler: str = "general") -> float:
    """Messages per second through the full outbox path (see the module docstring) with the handler in the form
    `handler` (one of `HANDLERS`), in a database of its own."""
    return (await measure_outbox_figures(n, amqp_url, database_url, handler)).msgs_per_s


async def measure_outbox_figures(n: int, amqp_url: str, database_url: str, handler: str = "general") -> Figures:
    """`measure_outbox` with where the CPU went (see `Figures`)."""
    if handler not in HANDLERS:
        raise ValueError(f"handler must be one of {HANDLERS}, not {handler!r}")
    async with own_database(database_url) as bench_database:
        return await _measure(n, amqp_url, bench_database, deferred=handler == "deferred")


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backends_cpu(pids: Sequence[int], database: str) -> float | None:
    """CPU seconds the backends `pids` of `database` used so far; None if one cannot be read as such here (a server
    on another machine, where these pids are not its backends)."""
    total = 0
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if database.encode() not in command:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


async def _measure(n: int, amqp_url: str, database_url: str, *, deferred: bool) -> Figures:
    pool = await create_pool(database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=f"bench{uuid4().hex[:10]}"))
    await transport.start()
    relays: list[OutboxRelay] = []
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
            await connection.execute("CREATE TABLE items (item_id uuid PRIMARY KEY, state text NOT NULL)")
            item_ids = [uuid4() for _ in range(n)]
            if not deferred:  # the general handler loads the item its command names
                await connection.executemany(
                    "INSERT INTO items (item_id, state) VALUES ($1, 'Allocated')", [(item_id,) for item_id in item_ids]
                )
        units = PostgresUnitOfWorkFactory(pool, encode=encode)
        received = 0
        done = asyncio.Event()

        async def on_event(delivery: Delivery) -> None:
            nonlocal received
            decode(delivery.message)
            await delivery.ack()
            received += 1
            if received == n:
                done.set()

        queue = await transport.declare_queue("items", [Binding("events", ItemRecorded.message_type)])
        await transport.consume(queue, on_event, prefetch=512)
        relays = [
            OutboxRelay(
                pool, transport, database_url=database_url, settings=RelaySettings(batch_size=256), wakes=units.wakes
            )
            for _ in range(RELAYS)
        ]
        for relay in relays:
            await relay.start()
        pool_id = uuid4()

        async def handle(command: Envelope) -> None:
            # As the consumer runtime runs a handler: lazily when it is marked deferred_writes.
            async with units.begin("items", command, lazy=deferred) as uow:
                assert uow is not None
                item_id = command.payload.item_id  # type: ignore[attr-defined]
                if deferred:
                    uow.defer("INSERT INTO items (item_id, state) VALUES ($1, 'Ready')", item_id)
                else:
                    state = await uow.connection.fetchval(
                        "SELECT state FROM items WHERE item_id = $1 FOR UPDATE", item_id
                    )
                    if state != "Allocated":
                        raise RuntimeError(f"item {item_id} is {state}, not Allocated")
                    await uow.connection.execute("UPDATE items SET state = 'Ready' WHERE item_id = $1", item_id)
                event = ItemRecorded(item_id=item_id, size_bytes=21474836480, pool_id=pool_id)
                uow.emit(Envelope.wrap(event, cause=command, producer="bench@localhost"))

        async def worker(share: list[UUID]) -> None:
            for item_id in share:
                await handle(Envelope.wrap(RecordItem(item_id=item_id), producer="bench@localhost"))

        database = urlsplit(database_url).path.lstrip("/")
        backends = [
            int(pid)
            for pid in await pool.fetchval(
                "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database()"
            )
        ]
        postgres_before = _backends_cpu(backends, database)
        process_before = _process_cpu()
        started = time.perf_counter()
        # A task group: if one handler fails, the others stop before the clean-up runs.
        async with asyncio.TaskGroup() as handlers:
            for i in range(HANDLER_CONCURRENCY):
                handlers.create_task(worker(item_ids[i::HANDLER_CONCURRENCY]))
        await asyncio.wait_for(done.wait(), timeout=max(60.0, n / 50))
        elapsed = time.perf_counter() - started
        process_cpu = _process_cpu() - process_before
        postgres_after = _backends_cpu(backends, database)
        postgres_cpu = None if postgres_before is None or postgres_after is None else postgres_after - postgres_before
        return Figures(n / elapsed, process_cpu * 1000 / n, None if postgres_cpu is None else postgres_cpu * 1000 / n)
    finally:
        for relay in relays:
            await relay.stop()
        await transport.close()
        await transport.delete_namespace()
        await pool.close()


def raw_aiopika(n: int) -> tuple[float, float]:
    """The baseline's msgs_per_s (raw aio-pika, persistent and confirmed, on a quorum queue) and the CPU seconds its
    whole process used (start-up included)."""
    script = SHARED_BENCH / "raw_aiopika.py"
    if not script.exists():
        raise SystemExit(f"bench: {script} is missing (the shared baselines live in ../shared/bench)")
    before = _children_cpu()
    result = subprocess.run([sys.executable, str(script), str(n), "quorum"], capture_output=True, text=True, check=True)
    return float(json.loads(result.stdout.strip().splitlines()[-1])["msgs_per_s"]), _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    # The one line of JSON is the output: the relay's logs go to stderr, and only its warnings.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    amqp_url = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    database_url = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    figures: dict[str, list[Figures]] = {handler: [] for handler in HANDLERS}
    raw: list[float] = []
    raw_cpu: list[float] = []
    # The baseline's CPU per message is marginal: its whole process's CPU for n messages less that for a few, which
    # takes its start-up (interpreter, imports, connection, declarations) out of the figure.
    few = min(500, n // 2)
    _, raw_cpu_few = raw_aiopika(few)
    for _ in range(rounds):
        for handler in HANDLERS:
            figures[handler].append(asyncio.run(measure_outbox_figures(n, amqp_url, database_url, handler)))
        rate, cpu = raw_aiopika(n)
        raw.append(rate)
        raw_cpu.append((cpu - raw_cpu_few) * 1000 / (n - few))
    best_figures = {handler: max(values, key=lambda f: f.msgs_per_s) for handler, values in figures.items()}
    best = {handler: f.msgs_per_s for handler, f in best_figures.items()}
    general = best_figures["general"]
    print(
        json.dumps(
            {
                "bench": "outbox",
                "n": n,
                "rounds": rounds,
                "outbox_msgs_per_s": round(best["general"]),
                "outbox_deferred_msgs_per_s": round(best["deferred"]),
                "raw_aiopika_msgs_per_s": round(max(raw)),
                "ratio_vs_raw": round(best["general"] / max(raw), 2),
                "deferred_ratio_vs_raw": round(best["deferred"] / max(raw), 2),
                "cpu_ms_per_msg": {
                    "process": round(general.process_cpu_ms, 3),
                    "postgres": None if general.postgres_cpu_ms is None else round(general.postgres_cpu_ms, 3),
                    "raw_aiopika_process": round(sorted(raw_cpu)[len(raw_cpu) // 2], 3),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
