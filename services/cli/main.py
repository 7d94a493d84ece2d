"""The `strata` command. Each group lives in its own module beside this one and is added here."""

import typer

from services.cli import asyncapi, demo, dlq, events, history, plugins, saga

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
