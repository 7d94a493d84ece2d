"""`strata outbox list` as a user runs it: what was committed but not published, with its attempts, oldest first."""

import json
import os
from uuid import uuid4

import pytest

from bus.postgres import PostgresUnitOfWorkFactory
from bus.postgres.pool import Pool
from tests.integration.bus_postgres_support import add_item_command, bus_pool, units
from tests.integration.cli_support import strata, strata_streams

__all__ = ["bus_pool", "units"]  # fixtures used by name

pytestmark = pytest.mark.integration


async def test_outbox_list_shows_what_no_relay_published(
    bus_pool: Pool, units: PostgresUnitOfWorkFactory, database_url: str
) -> None:
    env = {**os.environ, "STRATA_DATABASE_URL": database_url, "COLUMNS": "200"}
    code, output = await strata(env, "outbox", "list")
    assert code == 0, output
    assert "the outbox is empty" in output

    async with units.begin("api", None) as uow:  # committed, and no relay runs in this test
        assert uow is not None
        uow.emit(add_item_command(uuid4()))
        uow.emit(add_item_command(uuid4()))

    code, out, err = await strata_streams(env, "outbox", "list", "--json")
    assert code == 0, out + err
    unsent = json.loads(out)
    assert [(row["type"], row["attempts"]) for row in unsent] == [("bustest.pg.add_item", 0)] * 2
    assert unsent[0]["id"] < unsent[1]["id"]
    code, output = await strata(env, "outbox", "list")
    assert code == 0, output
    assert "bustest.pg.add_item" in output
