"""The agent's tables (schema `agent`): attached pools, fencing tokens, and operations (see `operations`).

A pool's configuration may hold secrets: it is kept here so that an agent can reopen the pool after a restart or on
another host of its cluster, sealed with the deployment key (`sealed_config`, see `services.runtime.sealing`) as
CloudStack encrypts storage credentials in its database; `config` holds it with its secrets masked, for an
operator's look. It is never logged or put in an event.
"""

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sagas import participant
from schemas.errors import NotFound

SCHEMA = "agent"


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """What reopening a pool's driver takes."""

    pool_id: UUID
    plugin: str
    sealed_config: str | None  # the plugin's raw configuration (JSON), sealed; None in a row older than sealing
    config: dict[str, Any]  # with its secrets masked, or (in a row older than sealing) the raw configuration
    config_version: int = 0  # bumped each time the configuration is replaced


async def save_pool(  # asyncpg connection
    connection: Any, pool_id: UUID, plugin: str, *, masked_config: str, sealed_config: str, host: str
) -> int:
    """Record (or replace) a pool's plugin and configuration: the JSON with secrets masked, and the sealed JSON;
    return its configuration version (0 first, one more each time it is replaced)."""
    version: int = await connection.fetchval(
        f"INSERT INTO {SCHEMA}.pools (pool_id, plugin, config, sealed_config, attached_by) "
        "VALUES ($1, $2, $3::jsonb, $4, $5) "
        "ON CONFLICT (pool_id) DO UPDATE SET plugin = EXCLUDED.plugin, config = EXCLUDED.config, "
        "sealed_config = EXCLUDED.sealed_config, attached_by = EXCLUDED.attached_by, attached_at = now(), "
        f"config_version = {SCHEMA}.pools.config_version + 1 RETURNING config_version",
        pool_id,
        plugin,
        masked_config,
        sealed_config,
        host,
    )
    return version


async def config_version(connection: Any, pool_id: UUID) -> int | None:  # asyncpg connection or pool
    """The pool's configuration version; None if no agent attached it."""
    version: int | None = await connection.fetchval(
        f"SELECT config_version FROM {SCHEMA}.pools WHERE pool_id = $1", pool_id
    )
    return version


async def load_pool(connection: Any, pool_id: UUID) -> PoolRecord:  # asyncpg connection or pool
    """The pool's record; `NotFound` if no agent attached it."""
    row = await connection.fetchrow(
        f"SELECT plugin, config, sealed_config, config_version FROM {SCHEMA}.pools WHERE pool_id = $1", pool_id
    )
    if row is None:
        raise NotFound(f"pool {pool_id} is not attached to any agent (send agent.pool.attach first)", field="pool_id")
    return PoolRecord(pool_id, row["plugin"], row["sealed_config"], json.loads(row["config"]), row["config_version"])


async def delete_pool(connection: Any, pool_id: UUID) -> None:  # asyncpg connection
    """Forget a detached pool's record (and with it its configuration)."""
    await connection.execute(f"DELETE FROM {SCHEMA}.pools WHERE pool_id = $1", pool_id)


async def check_fencing(connection: Any, resources: list[str], token: int | None) -> None:  # asyncpg connection
    """Refuse (Aborted) a command whose token is older than one seen for any of its resources (remember it), or
    that carries none on a resource a saga holds (see `sagas.participant.check_fencing`).
    """
    await participant.check_fencing(connection, resources, token, table=f"{SCHEMA}.fencing")


async def start_operation(connection: Any, command_id: UUID, command_type: str, consumer: str) -> None:  # asyncpg
    """Record the intent to run a command (again, after an interruption: one more attempt)."""
    await connection.execute(
        f"INSERT INTO {SCHEMA}.operations (command_id, command_type, consumer, state) VALUES ($1, $2, $3, 'running') "
        f"ON CONFLICT (command_id) DO UPDATE SET attempts = {SCHEMA}.operations.attempts + 1, started_at = now()",
        command_id,
        command_type,
        consumer,
    )


FINISH_OPERATION = (
    f"UPDATE {SCHEMA}.operations SET state = $2, outcome_type = $3, error_code = $4, finished_at = now() "
    "WHERE command_id = $1"
)
"""Record a command's result (`command_id, state, outcome_type, error_code`), in the result's transaction."""


async def operation_finished(connection: Any, command_id: UUID) -> bool:  # asyncpg connection or pool
    """True if the command's result was recorded (with its inbox row): it must not run again."""
    state = await connection.fetchval(f"SELECT state FROM {SCHEMA}.operations WHERE command_id = $1", command_id)
    return state is not None and state != "running"
