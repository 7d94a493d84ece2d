"""Garbage collection of a repository, as a job: an agent that reaches it frees the chunks no manifest references.

The chunked format's own markers keep a collection from freeing chunks a backup being written is about to name: such
a collection frees nothing and says so (`deferred`); a later one does the work.
"""

from bus.ports import UnitOfWork
from schemas import Envelope, Event
from schemas.backup import CollectRepositoryGarbage, RepositoryGarbageCollected, RepositoryGarbageCollectFailed
from schemas.backup_agent import CollectGarbageOnStore, GarbageCollectedOnStore, GarbageCollectOnStoreFailed
from schemas.errors import FailedPrecondition, StrataError
from services.backup import repository as repo
from services.backup.deps import BackupDeps
from services.backup.repositories import open_config
from services.backup.requests import Requester, answer, refuse, refusing, take, to_agent

# Waiting requests are keyed by the repository's id in the column that holds a backup's id for the other kinds.
COLLECT = "collect_garbage"


async def collect_garbage(
    command: CollectRepositoryGarbage, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Have an agent that backed up into the repository collect its garbage."""

    def failed(error: StrataError) -> Event:
        return RepositoryGarbageCollectFailed(repository_id=command.repository_id, error=error.info())

    async def body() -> None:
        repository = await repo.get_repository(uow.connection, command.repository_id)
        pool_id = await uow.connection.fetchval(
            "SELECT pool_id FROM backup.backups WHERE repository_id = $1 ORDER BY created_at DESC LIMIT 1",
            command.repository_id,
        )
        if pool_id is None:
            raise FailedPrecondition(
                f"repository {command.repository_id} never took a backup: it holds nothing to collect",
                field="repository_id",
            )
        sent = CollectGarbageOnStore(
            repository_id=repository.repository_id,
            plugin=repository.plugin,
            config=open_config(deps, repository),
            **await repo.pool_route(uow.connection, pool_id),
        )
        await to_agent(uow, Requester.of(envelope), sent, kind=COLLECT, backup_id=command.repository_id)

    await refusing(uow, envelope, failed, body)


async def on_garbage_collected(
    event: GarbageCollectedOnStore, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """Answer the requesters with what was freed."""
    collected = RepositoryGarbageCollected(
        repository_id=event.repository_id,
        freed_chunks=event.freed_chunks,
        freed_bytes=event.freed_bytes,
        deferred=event.deferred,
    )
    for requester in await take(uow, COLLECT, event.repository_id, envelope):
        answer(uow, requester, collected)


async def on_garbage_collect_failed(
    event: GarbageCollectOnStoreFailed, envelope: Envelope, uow: UnitOfWork, deps: BackupDeps
) -> None:
    """The requesters learn why."""
    failed = RepositoryGarbageCollectFailed(repository_id=event.repository_id, error=event.error)
    for requester in await take(uow, COLLECT, event.repository_id, envelope):
        refuse(uow, requester, failed, event.error)
