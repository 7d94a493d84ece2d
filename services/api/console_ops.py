"""Console pages for what operators watch and act on: sagas (list, timeline, retry/skip/abort/compensate), dead
letters (list, re-drive preview, re-drive, purge) and snapshots (list, take, delete). They call the same route
functions as the JSON API, with the session's key."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sagas.records import SagaStatus
from schemas import StrataError
from services.api.auth import context_of
from services.api.console import Console, may, render
from services.api.diagrams import saga_diagram
from services.api.errors import described
from services.api.keys import Role
from services.api.models import CreateSnapshotRequest
from services.api.routes_misc import list_sagas, show_saga
from services.api.routes_more import list_backups, list_repositories
from services.api.routes_ops import (
    DeadLetterIds,
    SagaAction,
    act_on_saga,
    list_dead_letters,
    preview_dead_letter,
    purge_dead_letters,
    redrive_dead_letters,
)
from services.api.routes_vms import RevertRequest, list_vms, revert_vm
from services.api.routes_volumes import create_snapshot, delete_snapshot, list_snapshots, volume_chain
from services.api.routes_volumes import list_volumes as volumes_of

router = APIRouter(include_in_schema=False)


def _timeline(export: dict[str, Any]) -> list[dict[str, Any]]:  # Any: the saga export's JSON values
    """Each step with its offset from the saga's start and its duration, for the timeline's bars."""
    started = datetime.fromisoformat(export["instance"]["created_at"])
    steps = export["steps"]
    ends = [datetime.fromisoformat(step["finished_at"]) for step in steps if step.get("finished_at")]
    span = max(((end - started).total_seconds() for end in ends), default=0.0) or 1.0
    rows = []
    for step in steps:
        begun = datetime.fromisoformat(step["created_at"])
        ended = datetime.fromisoformat(step["finished_at"]) if step.get("finished_at") else None
        offset = (begun - started).total_seconds()
        length = ((ended - begun).total_seconds()) if ended else None
        rows.append(
            {
                **step,
                "offset": offset,
                "duration": length,
                "left": 100 * offset / span,
                "width": max(1.0, 100 * (length or 0) / span),
                "what": (step.get("command") or {}).get("type") or step["kind"],
            }
        )
    return rows


@router.get("/sagas")
async def sagas_page(request: Request, session: Console, status: str = "") -> HTMLResponse:
    """Saga instances, newest first, by status."""
    chosen = SagaStatus(status) if status in {each.value for each in SagaStatus} else None
    instances = await list_sagas(request, session.key, status=chosen, name=None, limit=100)
    return render(request, "sagas.html", session, sagas=instances, wanted=status, statuses=list(SagaStatus))


@router.get("/sagas/{saga_id}")
async def saga_page(request: Request, session: Console, saga_id: UUID, done: str = "") -> HTMLResponse:
    """A saga's timeline: its steps in order, each with its attempts, offset and duration; operator actions."""
    export = await show_saga(request, session.key, saga_id)
    context = context_of(request)
    diagram = await saga_diagram(context.pool, saga_id, saga_schema=context.saga_schema)
    steps, actions = _timeline(export), list(SagaAction)
    return render(
        request, "saga.html", session, export=export, steps=steps, actions=actions, done=done, diagram=diagram
    )


@router.post("/sagas/{saga_id}/{action}")
async def saga_action(
    request: Request, session: Console, saga_id: UUID, action: SagaAction, reason: Annotated[str, Form()] = ""
) -> Response:
    """An operator action; its outcome shown on the saga's page."""
    may(session, Role.OPERATOR)
    try:
        done = (await act_on_saga(request, session.key, saga_id, action, reason))["done"]
    except StrataError as error:
        done = f"refused: {described(error)['message']}"
    return RedirectResponse(f"/sagas/{saga_id}?done={done}", status_code=303)


@router.get("/dead-letters")
async def dead_letters_page(request: Request, session: Console, done: str = "") -> HTMLResponse:
    """Dead letters with why each died."""
    letters = await list_dead_letters(request, session.key, limit=500)
    return render(request, "dead_letters.html", session, letters=letters, done=done)


@router.get("/dead-letters/{message_id}")
async def dead_letter_page(request: Request, session: Console, message_id: str) -> HTMLResponse:
    """The re-drive preview: the message as it would be sent back (secrets masked), and to which queue."""
    letter = await preview_dead_letter(request, session.key, message_id)
    return render(request, "dead_letter.html", session, letter=letter)


@router.post("/dead-letters/{verb}")
async def dead_letters_action(
    request: Request, session: Console, verb: str, message_id: Annotated[str, Form()] = ""
) -> Response:
    """Re-drive or purge one dead letter (or all, from the list's own button)."""
    may(session, Role.OPERATOR)
    body = DeadLetterIds(message_ids=[message_id]) if message_id else DeadLetterIds(all=True)
    if verb == "redrive":
        done = f"re-drove {(await redrive_dead_letters(request, session.key, body))['redriven']}"
    elif verb == "purge":
        done = f"purged {(await purge_dead_letters(request, session.key, body))['purged']}"
    else:
        done = "nothing done"
    return RedirectResponse(f"/dead-letters?done={done}", status_code=303)


@router.get("/backups")
async def backups_page(request: Request, session: Console) -> HTMLResponse:
    """Backup repositories and backups, with what each backup read, wrote and reused."""
    repositories = await list_repositories(request, session.key)
    backups = await list_backups(request, session.key, volume=None)
    return render(request, "backups.html", session, repositories=repositories, backups=backups)


@router.get("/vms")
async def vms_page(request: Request, session: Console) -> HTMLResponse:
    """VMs with their host, power state, volumes and VM snapshots; revert one to a VM snapshot."""
    return render(request, "vms.html", session, vms=await list_vms(request, session.key))


@router.post("/vms/{vm}/revert")
async def revert_vm_page(
    request: Request, session: Console, vm: str, vm_snapshot_id: Annotated[UUID, Form()]
) -> Response:
    """Revert a VM, then watch its operation (and from there its saga's timeline)."""
    may(session, Role.OPERATOR)
    answer = await revert_vm(request, session.key, vm, RevertRequest(vm_snapshot_id=vm_snapshot_id))
    return RedirectResponse(str(answer.headers["location"]).replace("/api/v1", ""), status_code=303)


@router.get("/volumes/{volume}/chain")
async def chain_page(request: Request, session: Console, volume: str) -> HTMLResponse:
    """A volume's snapshot chain as a tree: each snapshot under its parent, the live volume under its base."""
    described = await volume_chain(request, session.key, volume)
    known = {node.snapshot_id for node in described.nodes}
    children: dict[UUID | None, list[Any]] = {}
    for node in described.nodes:
        children.setdefault(node.parent_id if node.parent_id in known else None, []).append(node)
    pending = {merge.hidden_id for merge in described.pending}
    return render(request, "chain.html", session, chain=described, children=children, pending=pending, volume=volume)


@router.get("/snapshots")
async def snapshots_page(request: Request, session: Console) -> HTMLResponse:
    """Snapshots, newest first, with their chain parent; take one of a volume."""
    snapshots = await list_snapshots(request, session.key, volume=None, include_destroyed=False)
    volumes = await volumes_of(request, session.key, pool=None, include_expunged=False)
    names = {volume.volume_id: volume.name for volume in volumes}
    return render(request, "snapshots.html", session, snapshots=snapshots, volumes=volumes, names=names)


@router.post("/snapshots")
async def take_snapshot(request: Request, session: Console, volume: Annotated[str, Form()]) -> Response:
    """Snapshot a volume, then follow it."""
    may(session, Role.OPERATOR)
    answer = await create_snapshot(request, session.key, CreateSnapshotRequest(volume=volume))
    return RedirectResponse(str(answer.headers["location"]).replace("/api/v1", ""), status_code=303)


@router.post("/snapshots/{snapshot_id}/delete")
async def remove_snapshot(request: Request, session: Console, snapshot_id: UUID) -> Response:
    """Delete a snapshot, then follow it."""
    may(session, Role.OPERATOR)
    answer = await delete_snapshot(request, session.key, snapshot_id)
    return RedirectResponse(str(answer.headers["location"]).replace("/api/v1", ""), status_code=303)
