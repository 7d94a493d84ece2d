"""`strata pool`: add, list, show, enable, disable, maintain, cancel-maintenance, delete primary storage pools
(`update`: services/cli/pool_update.py).

`add` checks the configuration against the plugin's own model before anything is sent (the field at fault is
named; values never are), and asks for a secret field with hidden input when it is not given.
"""

import json
import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas import StrataError
from schemas.errors import InvalidArgument
from schemas.storage import (
    AddPool,
    CancelPoolMaintenance,
    DeletePool,
    DisablePool,
    EnablePool,
    MaintainPool,
    PoolAdded,
    PoolAddFailed,
    PoolCommand,
    PoolOperationFailed,
    PoolScope,
    PoolState,
    PoolStateChanged,
)
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    console,
    errors,
    fail,
    human_bytes,
    id_or_name,
    invalid,
    listing,
    print_json,
    print_record,
    talk,
    the_only,
    zone_id,
)
from services.cli.thresholds import AllocatedOption, CapacityOption, OverprovisioningOption, thresholds_of

if TYPE_CHECKING:  # plugins, queries and the bus are imported when a command runs, so that `strata --help` stays fast
    from plugins.registry import Registry
    from schemas.storage_queries import PoolInfo
    from services.cli.sending import Client

app = typer.Typer(help="Primary storage pools.", no_args_is_help=True)
PoolArgument = Annotated[str, typer.Argument(help="The pool's id or name.")]
# States a pool passes through on its way to another: waiting stops at the next settled state.
PASSING = {PoolState.INITIAL, PoolState.PREPARE_FOR_MAINTENANCE, PoolState.CANCEL_MAINTENANCE}


def parse_config(pairs: list[str], config_json: str | None) -> dict[str, Any]:  # Any: JSON values for the plugin
    """`--config-json` first, then each `-c key=value` over it."""
    config: dict[str, Any] = {}
    if config_json:
        try:
            loaded = json.loads(config_json)
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"--config-json is not JSON: {error.msg}", field="config-json") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument("--config-json must be a JSON object", field="config-json")
        config.update(loaded)
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise InvalidArgument(f"-c takes key=value, got {key.strip() or pair!r}", field="config")
        config[key.strip()] = value
    return config


def checked_config(plugins: "Registry", plugin_name: str, config: dict[str, Any]) -> dict[str, Any]:  # Any: JSON
    """Prompt for missing secrets, then validate against the plugin's model; InvalidArgument names the field."""
    from plugins.registry import validate_config
    from plugins.sdk.config import secret_fields

    plugin = plugins.get(plugin_name)
    schema = plugin.manifest.config_model.model_json_schema()
    required = set(schema.get("required", []))
    for name in sorted(secret_fields(schema) & required - set(config)):
        config[name] = _ask_secret(name)
    validate_config(plugin, config)
    return config


def _ask_secret(name: str) -> str:
    """A secret field asked for with hidden input; without a terminal, read from what is piped in; with nothing
    there (or Ctrl-C), InvalidArgument says what was wanted and how to give it."""
    prompt = f"{name} (secret, not echoed)"
    missing = InvalidArgument(
        f"the secret field {name!r} is missing and no one answered its prompt: "
        f"give it with -c {name}=... or --config-json",
        field=name,
    )
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            return str(typer.prompt(prompt, hide_input=True))
        except typer.Abort:
            raise missing from None
    typer.echo(f"{prompt}: ", nl=False, err=True)  # no terminal: nothing typed is echoed; read a piped line
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line.strip():
        typer.echo(err=True)
        raise missing
    return line.rstrip("\n")


def checked_placement(
    plugins: "Registry",
    plugin_name: str,
    scope: PoolScope,
    *,
    host: str | None,
    cluster: str | None,
    hypervisors: list[str],
) -> frozenset[str]:
    """The flags of a placement checked against each other and the plugin's manifest, each refusal naming its flag;
    the hypervisors lower-cased."""
    manifest = plugins.get(plugin_name).manifest
    if "primary" not in manifest.roles:
        raise InvalidArgument(
            f"plugin {plugin_name} is not primary storage (its roles: {', '.join(sorted(manifest.roles))})",
            field="plugin",
        )
    if scope.value not in manifest.scopes:
        raise InvalidArgument(
            f"--scope {scope.value}: plugin {plugin_name} serves {', '.join(sorted(manifest.scopes))}", field="scope"
        )
    if scope is PoolScope.HOST and host is None:
        raise InvalidArgument(
            "a host-scoped pool (the default --scope) needs --host HOST (its cluster is the one the host's agent "
            "registered; see `strata host list`); or give --scope cluster with --cluster",
            field="host",
        )
    if scope is PoolScope.CLUSTER and cluster is None:
        raise InvalidArgument("a cluster-scoped pool needs --cluster CLUSTER (see `strata host list`)", field="cluster")
    if scope is not PoolScope.HOST and host is not None:
        raise InvalidArgument(f"--host is for --scope host only (this pool is {scope.value}-scoped)", field="host")
    wanted = frozenset(name.lower() for name in hypervisors)
    unserved = sorted(wanted - manifest.hypervisors)
    if unserved:
        raise InvalidArgument(
            f"--hypervisor {', '.join(unserved)}: "
            f"plugin {plugin_name} serves {', '.join(sorted(manifest.hypervisors))}",
            field="hypervisor",
        )
    return wanted


@app.command("add")
def add(  # noqa: PLR0917  # typer makes each parameter an option or argument
    name: Annotated[str, typer.Argument(help="The pool's name, unique in its zone.")],
    plugin: Annotated[str, typer.Option("--plugin", help="The plugin that serves it (`strata plugins list`).")],
    config: Annotated[
        list[str], typer.Option("--config", "-c", help="A config field as key=value (repeat).", show_default=False)
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    config_json: Annotated[str | None, typer.Option("--config-json", help="The config as a JSON object.")] = None,
    scope: Annotated[PoolScope, typer.Option(help="From where the pool is reachable.")] = PoolScope.HOST,
    zone_name: Annotated[str, typer.Option("--zone", help="The zone (a UUID or a name).")] = "default",
    cluster: Annotated[
        str | None, typer.Option(help="The cluster (cluster scope; for host scope, default: the host's).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="The host (host scope).")] = None,
    hypervisor: Annotated[list[str], typer.Option(help="A hypervisor it serves (repeat).")] = ["kvm"],  # noqa: B006
    tag: Annotated[list[str], typer.Option(help="A storage tag (repeat).")] = [],  # noqa: B006
    capacity_threshold: CapacityOption = None,
    allocated_threshold: AllocatedOption = None,
    overprovisioning: OverprovisioningOption = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Add a pool: the storage service attaches it through an agent and reports its capacity. Without threshold
    flags the deployment's capacity thresholds apply to it.

    Example: strata pool add fast-1 --plugin qcow2fs -c path=/srv/pools/fast-1 --host kvm-01 --cluster rack-1
    """
    from plugins.registry import load_plugins

    try:
        plugins = load_plugins()
        values = checked_config(plugins, plugin, parse_config(config, config_json))
        hypervisors = checked_placement(plugins, plugin, scope, host=host, cluster=cluster, hypervisors=hypervisor)
        pool_id, zone = uuid.uuid4(), zone_id(zone_name)

        def build(cluster_id: str | None) -> AddPool:
            return AddPool(
                pool_id=pool_id,
                name=name,
                plugin=plugin,
                config=values,
                scope=scope,
                zone_id=zone,
                cluster_id=cluster_id,
                host=host,
                hypervisors=hypervisors,
                tags=frozenset(tag),
                thresholds=thresholds_of(None, capacity_threshold, allocated_threshold, overprovisioning),
            )

        # A host's pool without --cluster is in its host's cluster: known once the registry is asked.
        built = None if scope is PoolScope.HOST and cluster is None else build(cluster)
    except StrataError as error:
        fail(error)
    except ValueError as error:  # pydantic's ValidationError: the fields at fault, never the config's values
        fail(invalid(error))

    async def work(client: "Client") -> PoolAdded:
        from services.cli.host import check_placement, cluster_of, known_hosts
        from services.cli.running import agent_of, agents_of_cluster, require_running

        # A typo is refused before anything is sent: no pool, no saga, no lock.
        hosts = await known_hosts(client, timeout=timeout)
        check_placement(hosts, host=host, cluster=cluster)
        if built is not None:
            command = built
        else:
            assert host is not None  # `checked_placement`: a host-scoped pool names its host
            try:
                command = build(cluster_of(hosts, host))
            except ValueError as error:
                raise invalid(error) from None
        # The attach is an agent's work: with none consuming, the pool would wait in Initial.
        if host or cluster:
            await require_running(client.transport, [agent_of(host) if host else agents_of_cluster(cluster or "")])
        with errors.status(f"adding pool {name} ..."):
            added = await client.send(command, (PoolAdded,), (PoolAddFailed,), timeout=timeout)
        assert isinstance(added, PoolAdded)
        return added

    added = talk(work)
    if as_json:
        print_json(added)
        return
    console.print(
        f"pool [bold]{added.name}[/bold] {added.pool_id} is Up: {human_bytes(added.capacity_bytes)} capacity, "
        f"{human_bytes(added.used_bytes)} used"
    )


async def find_pool(client: "Client", pool: str, *, timeout: float) -> "PoolInfo":
    """The pool named or numbered `pool`; NotFound says how to list them."""
    from schemas.storage_queries import ListPools, PoolsListed

    wanted = id_or_name(pool)
    listed = await client.ask(ListPools(pool_id=wanted), PoolsListed, timeout=timeout)
    return the_only(
        [info for info in listed.pools if wanted is not None or info.name == pool],
        missing=f"no pool {pool!r} (see `strata pool list`)",
        ambiguous=lambda count: f"{count} pools are named {pool!r} (in several zones): give its id",
        field="pool",
    )


@app.command("list")
def list_pools(
    include_removed: Annotated[bool, typer.Option("--all", help="Include removed pools.")] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 15.0,
) -> None:
    """List the pools with their state, capacity and use.

    Example: strata pool list --all
    """
    from schemas.storage_queries import ListPools, PoolsListed

    async def work(client: "Client") -> PoolsListed:
        return await client.ask(ListPools(include_removed=include_removed), PoolsListed, timeout=timeout)

    pools = list(talk(work).pools)
    if as_json:
        print_json(pools)
        return
    table = listing("id", "name", "plugin", "state", "scope", "capacity", "used", "allocated", "volumes", "tags")
    for info in pools:
        table.add_row(
            str(info.pool_id),
            info.name,
            info.plugin,
            _state(info.state),
            info.scope.value,
            human_bytes(info.capacity_bytes),
            human_bytes(info.used_bytes),
            human_bytes(info.allocated_bytes),
            str(info.volumes),
            ",".join(sorted(info.tags)),
        )
    console.print(table)


@app.command("show")
def show(pool: PoolArgument, as_json: JsonOption = False, timeout: TimeoutOption = 15.0) -> None:
    """Show one pool, with its configuration (secrets masked) and its own capacity thresholds.

    Example: strata pool show fast-1
    """

    async def work(client: "Client") -> "PoolInfo":
        return await find_pool(client, pool, timeout=timeout)

    print_record(talk(work), as_json)


def _state(state: PoolState) -> str:
    colour = {PoolState.UP: "green", PoolState.REMOVED: "dim", PoolState.ERROR_IN_MAINTENANCE: "red"}.get(state)
    return f"[{colour}]{state.value}[/{colour}]" if colour else state.value


def _change(command_type: type[PoolCommand], doing: str, summary: str) -> Any:  # Any: a typer command function
    def command(pool: PoolArgument, as_json: JsonOption = False, timeout: TimeoutOption = 120.0) -> None:
        async def work(client: "Client") -> PoolState:
            info = await find_pool(client, pool, timeout=timeout)
            with errors.status(f"{doing} pool {info.name} ..."):
                return await change_state(client, command_type(pool_id=info.pool_id), timeout=timeout)

        state = talk(work)
        if as_json:
            print_json({"pool": pool, "state": state.value})
        else:
            console.print(f"pool {pool} is {_state(state)}")

    command.__doc__ = (
        f"{summary}, and wait until it settles in its new state.\n\n"
        f"Example: strata pool {command_type.message_type.split('.', 1)[1].replace('_', '-')} fast-1"
    )
    return command


async def change_state(client: "Client", command: PoolCommand, *, timeout: float) -> PoolState:
    """Send a pool command and wait for the pool to settle (maintenance waits for in-flight operations)."""
    envelope = await client.publish(command)
    changed = await client.outcome(
        envelope,
        (PoolStateChanged,),
        (PoolOperationFailed,),
        timeout=timeout,
        where=lambda event: getattr(event, "pool_id", None) == command.pool_id,
    )
    assert isinstance(changed, PoolStateChanged)
    state = changed.new_state
    if state in PASSING:
        # The last step may be caused by something else (the last in-flight operation ending): any correlation.
        settled = await client.watch.wait_for(
            None,
            (PoolStateChanged,),
            timeout=timeout,
            where=lambda event: event.pool_id == command.pool_id and event.new_state not in PASSING,
        )
        assert isinstance(settled.payload, PoolStateChanged)
        state = settled.payload.new_state
    return state


app.command("enable")(_change(EnablePool, "enabling", "Enable a disabled pool (it takes new volumes again)"))
app.command("disable")(_change(DisablePool, "disabling", "Disable a pool (its volumes keep working, no new one)"))
app.command("maintain")(
    _change(MaintainPool, "putting into maintenance", "Put a pool into maintenance once its operations in flight end")
)
app.command("cancel-maintenance")(
    _change(CancelPoolMaintenance, "cancelling the maintenance of", "Bring a pool in maintenance back Up")
)
app.command("delete")(
    _change(DeletePool, "deleting", "Delete a disabled pool, one in maintenance, or one whose add never finished")
)
