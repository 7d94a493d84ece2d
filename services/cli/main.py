"""The `strata` command. Each group lives in its own module beside this one and is added here."""

from typing import Any

import typer
from typer.core import TyperOption

from services.cli import (
    api_key,
    asyncapi,
    backup,
    backup_prune,
    backup_repo,
    backup_schedule,
    bridge,
    demo,
    dlq,
    events,
    history,
    host,
    image_store,
    namespace,
    outbox,
    plugins,
    pool,
    pool_update,
    replay,
    run,
    saga,
    snapshot,
    snapshot_chain,
    snapshot_policy,
    template,
    topology,
    vm,
    volume,
    volume_migrate,
)


def _flag_type(option: TyperOption, ctx: Any) -> str | None:  # Any: the Context of typer's own copy of click
    """A flag takes no value, so its help shows none (typer 0.29 shows `--json <bool>`)."""
    return None if option.is_flag else _value_type(option, ctx)


_value_type = TyperOption.display_type_rich
setattr(TyperOption, "display_type_rich", _flag_type)  # noqa: B010  # mypy refuses assigning to a method

app = typer.Typer(
    name="strata",
    help="Event-driven storage orchestration for CloudStack-style clouds.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.command("demo")(demo.demo)
app.command("asyncapi")(asyncapi.asyncapi)
app.add_typer(dlq.app, name="dlq")
app.add_typer(events.app, name="events")
events.app.command("history")(history.history)
app.add_typer(saga.app, name="saga")
app.add_typer(plugins.app, name="plugins")
app.add_typer(pool.app, name="pool")
pool.app.command("update")(pool_update.update)
app.add_typer(volume.app, name="volume")
volume.app.command("migrate")(volume_migrate.migrate)
app.add_typer(snapshot.app, name="snapshot")
snapshot.app.command("chain")(snapshot_chain.chain)
snapshot.app.command("coalesce")(snapshot_chain.coalesce)
app.add_typer(snapshot_policy.app, name="snapshot-policy")
app.add_typer(vm.app, name="vm")
app.add_typer(host.app, name="host")
app.add_typer(outbox.app, name="outbox")
app.add_typer(namespace.app, name="namespace")
app.add_typer(template.app, name="template")
app.add_typer(template.iso_app, name="iso")
app.add_typer(image_store.app, name="image-store")
app.add_typer(backup.app, name="backup")
backup.app.command("prune")(backup_prune.prune)
app.add_typer(backup_repo.app, name="backup-repo")
app.add_typer(backup_schedule.app, name="backup-schedule")
app.command("run")(run.run)
app.command("up")(run.up)
app.add_typer(topology.app, name="topology")
app.add_typer(replay.app, name="replay")
app.add_typer(api_key.app, name="api-key")
app.add_typer(bridge.app, name="bridge")
