"""Pool settings after the add (`pool.update`): tags and the pool's own capacity thresholds are the storage
service's to change at once; configuration fields (a new password, a timeout) go to an agent of the pool, which keeps
the sealed configuration, merges them, validates the whole and reaches the pool with it before keeping it. The
update waits for the agent's answer as the pool's pending update (one at a time per pool) and is applied whole or
not at all: a refused configuration change leaves the tags and thresholds as they were too.
"""

from dataclasses import replace
from typing import Any

import structlog

from bus.ports import UnitOfWork
from plugins.sdk.config import immutable_fields
from schemas import Envelope
from schemas.errors import FailedPrecondition, InvalidArgument, StrataError
from schemas.pool_settings import (
    PoolReconfiguredOnHost,
    PoolReconfigureOnHostFailed,
    PoolUpdated,
    PoolUpdateFailed,
    ReconfigurePoolOnHost,
    UpdatePool,
)
from schemas.storage import PoolState, PoolThresholds
from services.storage import repository
from services.storage.context import Storage, agent_route, emit
from services.storage.repository import PoolRow

log = structlog.get_logger(__name__)

UPDATABLE_STATES = frozenset(
    {PoolState.UP, PoolState.DISABLED, PoolState.MAINTENANCE, PoolState.PREPARE_FOR_MAINTENANCE}
)


async def update_pool(command: UpdatePool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Apply tags and thresholds now, or send the configuration changes to an agent first."""
    try:
        pool = await repository.get_pool(uow.connection, command.pool_id, lock=True)
        _check(pool, command, storage)
    except StrataError as error:
        emit(uow, envelope, PoolUpdateFailed(pool_id=command.pool_id, error=error.info()), storage)
        return
    if not command.config:
        _apply(uow, envelope, storage, await _settled(uow, pool, _pending(command), pool.masked_config))
        return
    await repository.set_pending_update(uow.connection, pool.pool_id, _pending(command))
    host, cluster_id = agent_route(pool)
    reconfigure = ReconfigurePoolOnHost(
        pool_id=pool.pool_id, plugin=pool.plugin, changes=command.config, host=host, cluster_id=cluster_id
    )
    emit(uow, envelope, reconfigure, storage)


def _check(pool: PoolRow, command: UpdatePool, storage: Storage) -> None:
    """Refuse what cannot be updated, naming it; nothing is changed by a refusal."""
    if pool.state not in UPDATABLE_STATES:
        raise FailedPrecondition(f"pool {pool.name} is {pool.state}: its settings cannot change now", field="pool_id")
    if pool.pending_update is not None:
        raise FailedPrecondition(
            f"an update of pool {pool.name} is waiting for its agent: try again once it ended", field="pool_id"
        )
    schema = storage.plugins.get(pool.plugin).manifest.config_model.model_json_schema()
    known = set(schema.get("properties", {}))
    for name in sorted(command.config):
        if name not in known:
            raise InvalidArgument(
                f"plugin {pool.plugin} has no configuration field {name!r}; it has {', '.join(sorted(known))}",
                field=f"config.{name}",
            )
        if name in immutable_fields(schema):
            raise InvalidArgument(
                f"configuration field {name!r} of plugin {pool.plugin} cannot change once the pool is added "
                "(it says where the pool's data lives): add another pool and migrate the volumes",
                field=f"config.{name}",
            )


def _pending(command: UpdatePool) -> dict[str, Any]:
    """What the update changes besides the configuration, as JSON (kept while an agent checks the configuration)."""
    return {
        "config_fields": sorted(command.config),
        "tags": sorted(command.tags) if command.tags is not None else None,
        "thresholds": command.thresholds.model_dump() if command.thresholds is not None else None,
        "clear_thresholds": command.clear_thresholds,
    }


async def _settled(uow: UnitOfWork, pool: PoolRow, pending: dict[str, Any], masked: dict[str, Any]) -> PoolUpdated:
    """Keep the pool's new settings; the event that says what changed."""
    thresholds = pool.thresholds
    changed = [*pending["config_fields"]]
    if pending["thresholds"] is not None or pending["clear_thresholds"]:
        thresholds = PoolThresholds(**pending["thresholds"]) if pending["thresholds"] is not None else None
        changed.append("thresholds")
    tags = pool.tags
    if pending["tags"] is not None:
        tags = frozenset(pending["tags"])
        changed.append("tags")
    updated = replace(pool, tags=tags, thresholds=thresholds, masked_config=masked)
    await repository.set_pool_settings(uow.connection, updated)
    return PoolUpdated(pool_id=pool.pool_id, changed=tuple(changed), tags=tags, thresholds=thresholds)


def _apply(uow: UnitOfWork, envelope: Envelope, storage: Storage, updated: PoolUpdated) -> None:
    log.info("pool updated", pool_id=str(updated.pool_id), changed=list(updated.changed))
    emit(uow, envelope, updated, storage)


async def pool_reconfigured(
    event: PoolReconfiguredOnHost, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """The agent keeps the new configuration: apply the rest of the update and say so."""
    pool = await repository.find_pool(uow.connection, event.pool_id, lock=True)
    if pool is None or pool.pending_update is None:
        return  # answered already (a redelivery)
    _apply(uow, envelope, storage, await _settled(uow, pool, pool.pending_update, event.masked_config))


async def pool_reconfigure_failed(
    event: PoolReconfigureOnHostFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """The agent refused the configuration changes: nothing of the update is kept."""
    pool = await repository.find_pool(uow.connection, event.pool_id, lock=True)
    if pool is None or pool.pending_update is None:
        return
    await repository.set_pending_update(uow.connection, pool.pool_id, None)
    emit(uow, envelope, PoolUpdateFailed(pool_id=pool.pool_id, error=event.error), storage)
