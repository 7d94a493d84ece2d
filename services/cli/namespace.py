"""`strata namespace delete NS --yes`: remove a namespace's exchanges and queues from RabbitMQ (a test run's, a
demo's, a deployment's being retired), with the messages in them.

AMQP cannot list queues, so the queues are the ones strata knows: the fixed topology, every declared daemon's
queue, and the two queues of each host in the host registry (read from STRATA_DATABASE_URL). A namespace whose
daemons still consume is refused.
"""

import asyncio
from typing import Annotated

import typer

from schemas.errors import FailedPrecondition, StrataError
from services.cli.talking import JsonOption, bus_settings, console, errors, fail, print_json

app = typer.Typer(help="RabbitMQ namespaces (the prefix of every exchange and queue).", no_args_is_help=True)


def _registered_hosts() -> list[tuple[str, str]]:
    """(host, cluster) of every registered host; none if the registry cannot be read (said on stderr)."""
    from bus.postgres import create_pool
    from bus.postgres.errors import translated_errors
    from services.runtime.settings import RuntimeSettings

    async def main() -> list[tuple[str, str]]:
        with translated_errors():
            pool = await create_pool(RuntimeSettings().database_url.get_secret_value(), min_size=1, max_size=1)
            try:
                rows = await pool.fetch("SELECT host, cluster_id FROM storage.hosts ORDER BY host")
            finally:
                await pool.close()
        return [(row["host"], row["cluster_id"]) for row in rows]

    try:
        return asyncio.run(main())
    except StrataError as error:
        errors.print(
            f"the host registry could not be read ({error.message}): no agent queue is deleted", highlight=False
        )
        return []


@app.command("delete")
def delete(
    namespace: Annotated[str, typer.Argument(help="The namespace to delete (STRATA_NAMESPACE of its daemons).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a namespace's exchanges and queues, and every message in them; asks first unless --yes.

    Example: strata namespace delete t3f9c2a1b7 --yes
    """
    from bus.rabbit import RabbitTransport
    from bus.topology import Topology
    from services.daemons import every_daemon

    try:
        topology = Topology(namespace)
    except StrataError as error:
        fail(error)
    if not yes and not typer.confirm(f"Delete namespace {namespace} and every message in it?", default=False):
        raise typer.Exit(1)
    names = [queue.name for daemon in every_daemon() for queue in daemon.queues]
    for host, cluster in _registered_hosts():
        names += [f"agent.{host}", f"agent.cluster.{cluster}"]

    async def main() -> list[str]:
        transport = RabbitTransport(
            bus_settings().model_copy(update={"namespace": namespace}), purpose="cli", declare_topology=False
        )
        await transport.start()
        try:
            for name in names:
                if await transport.consumers(name):
                    raise FailedPrecondition(
                        f"{topology.queue(name)} still has a consumer: stop the namespace's daemons first",
                        field="namespace",
                    )
        finally:
            await transport.close()
        queues = sorted({topology.queue(name) for name in names})
        await transport.delete_namespace(extra_queues=queues)
        return queues

    try:
        queues = asyncio.run(main())
    except StrataError as error:
        fail(error)
    if as_json:
        print_json({"namespace": namespace, "queues": queues})
        return
    console.print(f"namespace {namespace} deleted: its 4 exchanges and {len(queues)} service queues with the rest")
