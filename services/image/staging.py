"""Lending a zone-wide store to stage a volume through (a migration between pools that cannot reach each other).

The image service keeps the stores' configurations sealed, and a saga's journal never holds a secret: a saga names
the store by its id, and this service hands the copy to the agent with the store's configuration (`StoreAccess`,
masked in the bus journal), then relays the agent's answer to the saga's step. A zone without a store, or whose
stores all say they lack the room, is refused up front: nothing may start a copy that cannot finish (CloudStack
#3958 deleted a volume's source when its secondary storage was full).

A staged copy is raw: an agent whose pool can say where a volume's bytes lie (`BlockMapProvider`) stores them from
there, and one whose pool lays out a volume's content in place (`ContentWriter`) writes them straight into it, when
the store can (`BlockImageStore`); no staging file on either host. Otherwise the agents stage files as for any copy.
"""

import json
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.sdk.protocols import SpaceReporter
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Event, Message
from schemas.agent import (
    CopyFormat,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    StoreAccess,
    VolumeCopiedFromStore,
    VolumeCopiedToStore,
    VolumeCopyFromStoreFailed,
    VolumeCopyToStoreFailed,
)
from schemas.errors import ErrorInfo, FailedPrecondition, NotFound, ResourceExhausted, StrataError, Transient
from schemas.migration import (
    DeleteStagedCopy,
    DropStagedCopy,
    FindStagingStore,
    StagedCopyDeleted,
    StagedCopyDeleteFailed,
    StageVolumeIn,
    StageVolumeOut,
    StagingStoreFound,
)
from schemas.sagas import StepFailed
from services.image import repository as repo
from services.image.context import PRODUCER, ImageDeps

# Room kept free beyond the staged copy itself (the store's manifests and chunk index).
STAGING_MARGIN = 64 * 2**20
RELAYS = f"{repo.SCHEMA}.staging_relays"


async def find_staging_store(
    query: FindStagingStore, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps
) -> StagingStoreFound | None:
    """The zone's store with the most room for the copy, as a request's reply or a saga step's (or its refusal)."""
    try:
        found = await _find(query, uow, deps)
    except Transient:
        raise
    except StrataError as error:
        if envelope.saga_id is None:
            raise
        reply_failure(uow, envelope, error, producer=PRODUCER)
        return None
    if envelope.saga_id is not None:
        reply_success(uow, envelope, found, producer=PRODUCER)
    return found


async def _find(query: FindStagingStore, uow: UnitOfWork, deps: ImageDeps) -> StagingStoreFound:
    """The zone's store with the most room for the copy (one that cannot tell counts as roomy), or a refusal."""
    stores = await repo.zone_stores(uow.connection, query.zone_id)
    if not stores:
        raise FailedPrecondition(
            f"zone {query.zone_id} has no image store to stage the copy through: add one with `strata image-store add`",
            field="zone_id",
        )
    best: StagingStoreFound | None = None
    refused: list[str] = []
    for row in stores:
        driver = deps.stores.open(row.store_id, row.plugin, row.sealed_config)
        free = await driver.free_bytes() if isinstance(driver, SpaceReporter) else None
        if free is not None and free < query.size_bytes + STAGING_MARGIN:
            refused.append(f"{row.name} has {free} bytes free")
            continue
        found = StagingStoreFound(
            zone_id=query.zone_id, store_id=row.store_id, name=row.name, plugin=row.plugin, free_bytes=free
        )
        if best is None or (found.free_bytes or 0) > (best.free_bytes or 0):
            best = found
    if best is None:
        raise ResourceExhausted(
            f"no image store of zone {query.zone_id} has room to stage {query.size_bytes} bytes: {'; '.join(refused)}",
            field="size_bytes",
        )
    return best


async def stage_volume_out(command: StageVolumeOut, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Have the source pool's agent copy the volume into the store."""

    async def agent_command(store: StoreAccess) -> Message:
        return CopyVolumeToStore(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            store=store,
            object_id=command.object_id,
            format=CopyFormat.RAW,
            transit=True,  # read back only by the copy in, which checks every piece of it
            deadline_seconds=command.deadline_seconds,
            host=command.host,
            cluster_id=command.cluster_id,
        )

    await _hand_over(command.store_id, envelope, uow, deps, agent_command)


async def stage_volume_in(command: StageVolumeIn, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Have the destination pool's agent make the volume from its staged copy."""

    async def agent_command(store: StoreAccess) -> Message:
        return CopyVolumeFromStore(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            store=store,
            object_id=command.object_id,
            format=CopyFormat.RAW,
            checksum=command.checksum,
            deadline_seconds=command.deadline_seconds,
            host=command.host,
            cluster_id=command.cluster_id,
        )

    await _hand_over(command.store_id, envelope, uow, deps, agent_command)


async def drop_staged_copy(command: DropStagedCopy, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Have an agent delete the staged copy (a store removed since holds nothing to delete)."""

    async def agent_command(store: StoreAccess) -> Message:
        return DeleteStagedCopy(
            store=store, object_id=command.object_id, host=command.host, cluster_id=command.cluster_id
        )

    if await repo.find_store(uow.connection, command.store_id) is None:
        _answer(uow, _lineage(envelope), StagedCopyDeleted(store_id=command.store_id, object_id=command.object_id))
        return
    await _hand_over(command.store_id, envelope, uow, deps, agent_command)


async def _hand_over(store_id: UUID, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps, build: Any) -> None:
    """Send the agent its command with the store's configuration, in the requester's lineage; keep who to answer."""
    request = _lineage(envelope)
    row = await repo.find_store(uow.connection, store_id)
    if row is None:
        error = NotFound(f"image store {store_id} does not exist (removed?)", field="store_id")
        _answer(uow, request, StepFailed(error=error.info()))
        return
    config = json.loads(deps.stores.sealer.open(row.sealed_config, row.store_id.bytes))
    command: Message = await build(StoreAccess(store_id=row.store_id, plugin=row.plugin, config=config))
    sent = Envelope.wrap(
        command, correlation_id=envelope.correlation_id, producer=PRODUCER, fencing_token=envelope.fencing_token
    ).model_copy(update={"causation_id": envelope.message_id})
    uow.emit(sent)
    await uow.connection.execute(
        f"INSERT INTO {RELAYS} (agent_message_id, request) VALUES ($1, $2::jsonb)", sent.message_id, json.dumps(request)
    )


def _lineage(envelope: Envelope) -> dict[str, Any]:  # Any: JSON
    return {
        "message_id": str(envelope.message_id),
        "correlation_id": str(envelope.correlation_id),
        "saga_id": str(envelope.saga_id) if envelope.saga_id else None,
        "step": envelope.step,
        "fencing_token": envelope.fencing_token,
    }


def _answer(uow: UnitOfWork, request: dict[str, Any], payload: Event) -> None:  # Any: JSON, see `_lineage`
    """`payload` as the answer to the request: a saga's step reply, or an event in its correlation."""
    envelope = Envelope.wrap(
        payload,
        correlation_id=UUID(request["correlation_id"]),
        saga_id=UUID(request["saga_id"]) if request["saga_id"] else None,
        step=request["step"],
        fencing_token=request["fencing_token"],
        producer=PRODUCER,
    ).model_copy(update={"causation_id": UUID(request["message_id"])})
    uow.emit(envelope)


async def relay_answer(event: Event, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """An agent answered a staging copy this service handed it: answer whoever asked (nothing if no one did)."""
    text = await uow.connection.fetchval(
        f"DELETE FROM {RELAYS} WHERE agent_message_id = $1 RETURNING request::text", envelope.causation_id
    )
    if text is None:
        return  # not one of this service's hand-overs (or answered already)
    request: dict[str, Any] = json.loads(text)  # the object written by _hand_over
    error: ErrorInfo | None = getattr(event, "error", None)
    if error is not None and request["saga_id"]:
        _answer(uow, request, StepFailed(error=error))
    else:
        _answer(uow, request, event)


# The agents' answers this service relays.
RELAYED: tuple[type[Event], ...] = (
    VolumeCopiedToStore,
    VolumeCopyToStoreFailed,
    VolumeCopiedFromStore,
    VolumeCopyFromStoreFailed,
    StagedCopyDeleted,
    StagedCopyDeleteFailed,
)
