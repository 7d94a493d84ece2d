"""Ask the agent again when a plugin died midway through an operation.

A plugin's calls are idempotent and finish what an interrupted call left (a frozen layer without its new active
layer, a revert's temporary file): an INTERNAL or ABORTED failure may mean "stopped halfway", so the same command
is sent again, up to `MAX_ATTEMPTS` in all, before the failure is accepted. Answering the requester with the
failure at once would leave the volume as the crash left it, and the saga's undo cannot repair that.
"""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import ErrorInfo, Message
from schemas.errors import Aborted, StrataError
from schemas.snapshot import CreateSnapshotOnPool, DeleteSnapshotOnPool, RevertVolumeOnPool
from services.snapshot import repository as repo
from services.snapshot.requests import Requester, to_agent

MAX_ATTEMPTS = 3
RECONCILABLE = frozenset({StrataError.code, Aborted.code})
CREATE, DELETE, REVERT = "create", "delete", "revert"


async def ask_again(uow: UnitOfWork, kind: str, snapshot_id: UUID, volume_id: UUID, error: ErrorInfo) -> bool:
    """Send the operation to the agent again if the failure may be a crash midway; False if it is final."""
    if error.code not in RECONCILABLE:
        return False
    connection = uow.connection
    rows = await connection.fetch(
        "SELECT attempts, request::text AS request FROM snapshot.operations "
        "WHERE kind = $1 AND snapshot_id = $2 AND volume_id = $3 FOR UPDATE",
        kind,
        snapshot_id,
        volume_id,
    )
    if not rows or max(row["attempts"] for row in rows) >= MAX_ATTEMPTS:
        return False
    snapshot = await repo.get_snapshot(connection, snapshot_id)
    pool = await repo.get_pool(connection, snapshot.pool_id)
    command: Message
    if kind == CREATE:
        command = CreateSnapshotOnPool(
            pool_id=pool.pool_id,
            volume_id=volume_id,
            snapshot_id=snapshot_id,
            kind=snapshot.kind,
            parent_id=snapshot.parent_id,
            **pool.route(),
        )
    elif kind == REVERT:
        command = RevertVolumeOnPool(pool_id=pool.pool_id, volume_id=volume_id, snapshot_id=snapshot_id, **pool.route())
    else:
        command = DeleteSnapshotOnPool(
            pool_id=pool.pool_id, volume_id=volume_id, snapshot_id=snapshot_id, **pool.route()
        )
    to_agent(uow, Requester.from_json(rows[0]["request"]), command)
    await connection.execute(
        "UPDATE snapshot.operations SET attempts = attempts + 1 "
        "WHERE kind = $1 AND snapshot_id = $2 AND volume_id = $3",
        kind,
        snapshot_id,
        volume_id,
    )
    return True
