"""Backup repositories: add (a backup-role plugin, its configuration checked and sealed, a zone), remove; and the
pools the service routes agent commands through."""

import json

from bus.ports import UnitOfWork
from plugins.registry import validate_config
from plugins.sdk.capabilities import Role
from schemas import Envelope, Event
from schemas.backup import (
    AddBackupRepository,
    BackupRepositoryAdded,
    BackupRepositoryAddFailed,
    BackupRepositoryRemoved,
    BackupRepositoryRemoveFailed,
    RemoveBackupRepository,
)
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, StrataError
from schemas.storage import PluginConfig, PoolAdded, VolumeCreated
from services.backup import repository as repo
from services.backup.deps import BackupDeps
from services.backup.requests import Requester, answer, refusing


async def add_repository(command: AddBackupRepository, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Check the plugin (backup role) and its configuration, seal the configuration, record the repository."""

    def failed(error: StrataError) -> Event:
        return BackupRepositoryAddFailed(repository_id=command.repository_id, error=error.info())

    async def body() -> None:
        existing = await repo.find_repository(uow.connection, command.repository_id)
        if existing is not None:
            if (existing.name, existing.plugin, existing.zone_id) != (command.name, command.plugin, command.zone_id):
                raise AlreadyExists(f"repository {command.repository_id} exists as another", field="repository_id")
        else:
            masked = _checked_config(deps, command.plugin, command.config)
            if await repo.name_taken(uow.connection, command.name):
                raise AlreadyExists(f"a backup repository is already called {command.name!r}", field="name")
            row = repo.RepositoryRow(
                repository_id=command.repository_id,
                name=command.name,
                plugin=command.plugin,
                sealed_config=deps.sealer.seal(json.dumps(dict(command.config)).encode(), command.repository_id.bytes),
                zone_id=command.zone_id,
            )
            await repo.insert_repository(uow.connection, row, masked, deps.clock())
        added = BackupRepositoryAdded(
            repository_id=command.repository_id, name=command.name, plugin=command.plugin, zone_id=command.zone_id
        )
        answer(uow, Requester.of(envelope), added)

    await refusing(uow, envelope, failed, body)


def _checked_config(deps: BackupDeps, plugin_name: str, config: PluginConfig) -> str:
    """The configuration validated by the plugin's model, as JSON with its secrets masked."""
    try:
        plugin = deps.plugins.get(plugin_name)
    except NotFound as error:
        raise InvalidArgument(error.message, field="plugin") from None
    if Role.BACKUP not in plugin.manifest.roles:
        raise InvalidArgument(f"plugin {plugin_name!r} does not serve the backup role", field="plugin")
    return validate_config(plugin, config).model_dump_json()  # SecretStr fields dump as '**********'


async def remove_repository(
    command: RemoveBackupRepository, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Forget a repository that holds no backup any more (a repository already gone counts as removed)."""

    def failed(error: StrataError) -> Event:
        return BackupRepositoryRemoveFailed(repository_id=command.repository_id, error=error.info())

    async def body() -> None:
        live = await repo.live_backups_in(uow.connection, command.repository_id)
        if live:
            raise FailedPrecondition(
                f"repository {command.repository_id} still holds {live} backup(s): delete them first",
                field="repository_id",
            )
        await repo.delete_repository(uow.connection, command.repository_id)
        answer(uow, Requester.of(envelope), BackupRepositoryRemoved(repository_id=command.repository_id))

    await refusing(uow, envelope, failed, body)


def open_config(deps: BackupDeps, row: repo.RepositoryRow) -> PluginConfig:
    """A repository's configuration in the clear, for the one agent command that needs it."""
    opened: PluginConfig = json.loads(deps.sealer.open(row.sealed_config, row.repository_id.bytes))
    return opened


async def on_pool_added(event: PoolAdded, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Remember where a pool's agents are."""
    await repo.upsert_pool(
        uow.connection,
        event.pool_id,
        plugin=event.plugin,
        scope=event.scope,
        cluster_id=event.cluster_id,
        host=event.host,
    )


async def on_volume_created(event: VolumeCreated, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps) -> None:
    """Remember which pool a volume is on (for restores in place)."""
    await repo.upsert_volume(uow.connection, event.volume_id, event.pool_id)
