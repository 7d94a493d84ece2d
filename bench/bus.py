"""Benchmark of the bus: typed events published through strata's Bus and consumed by a strata handler, against
raw aio-pika and FastStream doing the same on the same broker, in the same run.

strata's path: `Bus.publish_many` (persistent, mandatory, every message confirmed) of pydantic-validated envelopes
to `<ns>.events`, a durable quorum queue, and the consumer runtime (decode and validate, unit of work with an inbox,
handler, manual ack after the commit). The baselines are ../shared/bench/raw_aiopika.py (quorum queue) and
../shared/bench/faststream_peer.py, run as subprocesses; the outbox figures come from bench/outbox.py when present:
`outbox_msgs_per_s` with the general handler form, which reads and writes in its open transaction (four round
trips to PostgreSQL), `outbox_deferred_msgs_per_s` with a handler marked `deferred_writes` (one). Every contender
builds its messages inside its timed part: strata's envelopes (validated payloads, ids, times) are part of its work,
as the baselines' message objects are of theirs.

Each contender runs ROUNDS times, interleaved, and its best run counts (the outbox too, like the raw baseline it is
compared with).

usage: python bench/bus.py [N] [ROUNDS]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)
prints one JSON line: {"bench": "bus", "n": N, "strata_msgs_per_s": ..., "raw_aiopika_msgs_per_s": ...,
                       "faststream_msgs_per_s": ..., "outbox_msgs_per_s": ..., "ratio_vs_raw": ...,
                       "outbox_ratio_vs_raw": ..., "outbox_deferred_msgs_per_s": ..., "rounds": ...}
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as `python bench/bus.py`, Python puts bench/ first on the path, where this very file would shadow the `bus`
# package: the repository root goes there instead (it also makes `bench.outbox` importable).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from uuid import UUID, uuid4  # noqa: E402

import structlog  # noqa: E402
from pydantic import Field  # noqa: E402

from bus.facade import Bus  # noqa: E402
from bus.memory_uow import MemoryUnitOfWorkFactory  # noqa: E402
from bus.ports import UnitOfWork  # noqa: E402
from bus.rabbit import RabbitTransport  # noqa: E402
from bus.runtime import Consumer  # noqa: E402
from bus.settings import BusSettings  # noqa: E402
from schemas import Envelope, Event, MessageRegistry, message  # noqa: E402

SHARED_BENCH = REPO.parent / "shared" / "bench"
AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROUNDS = 2
bench_messages = MessageRegistry()


@message("bench.volume.created", 1, into=bench_messages)
class VolumeCreated(Event):
    """The same payload as the baselines publish."""

    volume_id: UUID = Field(description="The volume.")
    pool_id: UUID = Field(description="Its pool.")
    size_bytes: int = Field(ge=0, description="Its size.")
    format: str = Field(description="Image format.")


async def measure_strata(n: int) -> float:
    """Messages per second through strata's bus, from the first publish to the last handler's ack."""
    namespace = f"bench{uuid4().hex[:8]}"
    settings = BusSettings(amqp_url=AMQP_URL, namespace=namespace, prefetch=256, retry_delays=(1.0,))
    transport = RabbitTransport(settings, purpose="bench")
    await transport.start()
    bus = Bus(transport, messages=bench_messages)
    handled = 0
    done = asyncio.Event()

    async def volume_created(event: VolumeCreated, envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    consumer = Consumer(
        transport,
        MemoryUnitOfWorkFactory(bus),
        name="bench",
        handlers={VolumeCreated: volume_created},
        prefetch=settings.prefetch,
        messages=bench_messages,
    )
    try:
        await consumer.start()
        started = time.perf_counter()
        envelopes = [
            Envelope.wrap(
                VolumeCreated(volume_id=uuid4(), pool_id=uuid4(), size_bytes=21474836480, format="qcow2"),
                producer="bench@localhost",
            )
            for _ in range(n)
        ]
        await bus.publish_many(envelopes)
        await done.wait()
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await transport.close()
        await transport.delete_namespace()
    return n / elapsed


def run_baseline(script: str, *args: str) -> float:
    """Run one of ../shared/bench's scripts and return its msgs_per_s."""
    path = SHARED_BENCH / script
    if not path.exists():
        raise SystemExit(f"bench: {path} is missing (the shared baselines live in ../shared/bench)")
    result = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, check=True, env={**os.environ}
    )
    last = result.stdout.strip().splitlines()[-1]
    return float(json.loads(last)["msgs_per_s"])


async def measure_outbox_if_present(n: int, handler: str) -> float | None:
    """The outbox path's figure from bench/outbox.py (bus-postgres) with the handler in the form `handler`."""
    try:
        from bench.outbox import measure_outbox
    except ImportError:
        return None
    try:
        return await measure_outbox(n, AMQP_URL, DATABASE_URL, handler)
    except Exception as error:  # another team's bench failing must not hide this one's figures
        print(
            f"bench: the outbox measurement failed ({type(error).__name__}: {error}); reporting null", file=sys.stderr
        )
        return None


def main() -> None:
    # The one line of JSON is the output: the bus's logs go to stderr, and only its warnings.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    strata: list[float] = []
    raw: list[float] = []
    faststream: list[float] = []
    outboxes: dict[str, list[float | None]] = {"general": [], "deferred": []}
    # Interleaved rounds, best of each: on a shared machine a neighbour's burst hits one run, not one contender.
    for _ in range(rounds):
        strata.append(asyncio.run(measure_strata(n)))
        raw.append(run_baseline("raw_aiopika.py", str(n), "quorum"))
        faststream.append(run_baseline("faststream_peer.py", str(n)))
        for handler, figures in outboxes.items():
            figures.append(asyncio.run(measure_outbox_if_present(n, handler)))
    best = {handler: max((f for f in figures if f is not None), default=None) for handler, figures in outboxes.items()}
    outbox, deferred = best["general"], best["deferred"]
    print(
        json.dumps(
            {
                "bench": "bus",
                "n": n,
                "strata_msgs_per_s": round(max(strata)),
                "raw_aiopika_msgs_per_s": round(max(raw)),
                "faststream_msgs_per_s": round(max(faststream)),
                "outbox_msgs_per_s": None if outbox is None else round(outbox),
                "ratio_vs_raw": round(max(strata) / max(raw), 2),
                "outbox_ratio_vs_raw": None if outbox is None else round(outbox / max(raw), 2),
                "outbox_deferred_msgs_per_s": None if deferred is None else round(deferred),
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
