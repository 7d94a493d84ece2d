"""After a test run: delete every RabbitMQ queue left in a namespace the run handed out.

AMQP cannot list queues, so each test's clean-up deletes the queues it knows of; a daemon in a subprocess, a test
that failed half-way or a queue added to a daemon later can leave some behind, and thousands of idle quorum queues
slow a broker down for every later run. The sweep lists the broker's queues once, with `rabbitmqctl` (on the machine
the broker runs on, as root or rabbitmq), deletes the run's leftovers and names them, so a leaking test is noticed.
"""

import asyncio
import shutil
import subprocess
from collections.abc import Iterable

import aiormq

QUEUE_LISTING_TIMEOUT = 120.0  # seconds: rabbitmqctl starts an Erlang VM


def broker_queues() -> list[str] | None:
    """Every queue name on the local broker's default vhost; None when rabbitmqctl is missing or refused."""
    return _listed("list_queues")


def broker_exchanges() -> list[str] | None:
    """Every exchange name on the local broker's default vhost; None when rabbitmqctl is missing or refused."""
    return _listed("list_exchanges")


def _listed(what: str) -> list[str] | None:
    rabbitmqctl = shutil.which("rabbitmqctl") or shutil.which("/usr/sbin/rabbitmqctl")
    if rabbitmqctl is None:
        return None
    try:
        listed = subprocess.run(
            [rabbitmqctl, what, "--quiet", "--no-table-headers", "name"],
            capture_output=True,
            text=True,
            timeout=QUEUE_LISTING_TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def leftovers(queues: Iterable[str], namespaces: Iterable[str]) -> list[str]:
    """The queues that belong to one of `namespaces` (a queue of namespace `ns` is named `ns.<name>`)."""
    prefixes = tuple(f"{namespace}." for namespace in namespaces)
    return sorted(queue for queue in queues if prefixes and queue.startswith(prefixes))


async def delete_queues(amqp_url: str, queues: Iterable[str], exchanges: Iterable[str] = ()) -> None:
    """Delete `queues` (and the messages in them) and `exchanges` over one connection."""
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


def sweep(amqp_url: str, namespaces: Iterable[str]) -> str:
    """Delete the leftovers of `namespaces`; return one line saying what was found (for the run's summary)."""
    handed_out = set(namespaces)
    if not handed_out:
        return ""
    queues = broker_queues()
    if queues is None:
        return "broker sweep: rabbitmqctl is not usable here, leftover queues (if any) were not looked for"
    left = leftovers(queues, handed_out)
    exchanges = leftovers(broker_exchanges() or [], handed_out)
    if not left and not exchanges:
        return ""
    asyncio.run(delete_queues(amqp_url, left, exchanges))
    shown = ", ".join(left[:20]) + (f" and {len(left) - 20} more" if len(left) > 20 else "")
    return f"broker sweep: deleted {len(left)} queue(s) and {len(exchanges)} exchange(s) the tests left behind: {shown}"
