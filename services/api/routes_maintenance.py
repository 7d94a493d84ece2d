"""Operator views and housekeeping the CLI has: the outbox's unsent messages (`strata outbox list`), a backup
prune with keep-* rules (`strata backup prune`, a dry run first: `dry_run` lists what would go and removes nothing;
without it each backup no rule keeps is deleted, as an operation) and a repository's garbage collection (`strata
backup-repo gc`)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.backup import (
    BackupDeleted,
    BackupDeleteFailed,
    CollectRepositoryGarbage,
    DeleteBackup,
    RepositoryGarbageCollected,
    RepositoryGarbageCollectFailed,
)
from schemas.backup_schedules import KeepRules
from schemas.errors import NotFound
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.operations import Tracker
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.backup_prune import backed_up
from services.cli.backup_repo import repository_rows
from services.cli.outbox import OutboxRow, unsent_rows
from services.domain.policies import load_time_zone
from services.domain.retention import Keep, plan_prune

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]


@router.get("/outbox", response_model=list[OutboxRow], tags=["operations"])
async def outbox(request: Request, key: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[OutboxRow]:
    """The messages committed and not yet published, oldest first, with their attempts and last error."""
    async with context_of(request).pool.acquire() as connection:
        return await unsent_rows(connection, limit)


class PruneRequest(BaseModel):
    """Which backups of a volume to keep (`strata backup prune`)."""

    model_config = ConfigDict(extra="forbid")

    volume_id: uuid.UUID
    repository: str | None = Field(default=None, description="Only its backups in this repository (id or name).")
    keep: KeepRules
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="The clock periods are counted on.")
    dry_run: bool = Field(default=True, description="Only say what would go (the default).")


class PruneDecision(BaseModel):
    """One backup's fate: the rule that keeps it, or None (it goes)."""

    backup_id: uuid.UUID
    created_at: str
    kept_by: str | None


@router.post(
    "/backups/prune",
    tags=["backups"],
    response_model=list[PruneDecision],
    responses={202: {"model": OperationOut, "description": "The removal, followed as an operation."}},
)
async def prune(request: Request, key: Operator, body: PruneRequest) -> Any:  # Any: a list, or a 202 response
    """Decide every backup's fate (PBS's order: last, hourly, daily, weekly, monthly, yearly); with `dry_run` false,
    delete the ones no rule keeps (202, an operation)."""
    context = context_of(request)
    keep = Keep(
        body.keep.last, body.keep.hourly, body.keep.daily, body.keep.weekly, body.keep.monthly, body.keep.yearly
    )
    zone = load_time_zone(body.timezone)
    async with context.pool.acquire() as connection:
        repository_id = None
        if body.repository is not None:
            found = await repository_rows(connection, body.repository)
            if not found:
                raise NotFound(f"no backup repository {body.repository!r}", field="repository")
            repository_id = uuid.UUID(found[0]["repository_id"])
        decisions = plan_prune(await backed_up(connection, body.volume_id, repository_id), keep, zone)
    shown = [
        PruneDecision(backup_id=d.backup_id, created_at=d.created_at.isoformat(), kept_by=d.kept_by) for d in decisions
    ]
    if body.dry_run:
        return shown
    victims = [d.backup_id for d in decisions if d.kept_by is None]

    async def work(tracker: Tracker) -> dict[str, Any]:  # Any: JSON values
        async with context.sending(key) as client:
            for backup_id in victims:
                tracker.operation.note("deleting", backup_id=str(backup_id))
                await client.send(
                    DeleteBackup(backup_id=backup_id),
                    (BackupDeleted,),
                    (BackupDeleteFailed,),
                    timeout=context.settings.operation_timeout_seconds,
                )
        return {"removed": [str(each) for each in victims], "kept": len(decisions) - len(victims)}

    operation = await context.operations.start("backup.prune", str(body.volume_id), key.actor, work)
    return accepted(operation)


@router.post("/backup-repositories/{repository}/gc", status_code=202, response_model=OperationOut, tags=["backups"])
async def collect_garbage(request: Request, key: Operator, repository: str) -> JSONResponse:
    """Free the chunks no backup of the repository references (`strata backup-repo gc`); while a backup is being
    written nothing is freed (the outcome says `deferred`) and a later collection does it."""
    context = context_of(request)
    async with context.pool.acquire() as connection:
        found = await repository_rows(connection, repository)
    if not found:
        raise NotFound(f"no backup repository {repository!r}", field="repository")
    operation = await follow(
        context,
        key,
        kind="backup_repository.collect_garbage",
        target=found[0]["name"],
        command=CollectRepositoryGarbage(repository_id=uuid.UUID(str(found[0]["repository_id"]))),
        success=RepositoryGarbageCollected,
        failure=RepositoryGarbageCollectFailed,
    )
    return accepted(operation)
