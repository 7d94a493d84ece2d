"""`strata asyncapi`: an AsyncAPI 3.0 document of every registered message."""

import json

import typer


def asyncapi(namespace: str = typer.Option("strata", help="Namespace prefix of exchanges.")) -> None:
    """Print the AsyncAPI 3.0 document (JSON) of every registered command and event."""
    from schemas.asyncapi import asyncapi_document
    from services.catalog import load_all_messages

    load_all_messages()
    typer.echo(json.dumps(asyncapi_document(namespace=namespace), indent=2))
