"""Operations (poll, follow as Server-Sent Events), API keys (admin), sagas (read from the saga store as
`strata saga list|show` does) and hosts (the registry the console's placement choices come from)."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from sagas.postgres_store import PostgresSagaStore
from sagas.records import SagaStatus
from sagas.serialize import instance_to_json, step_to_json
from schemas.errors import NotFound
from schemas.hosts import HostInfo
from schemas.redact import redact
from services.api.audit import recent, record
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import CreatedKeyOut, CreateKeyRequest, KeyOut, OperationOut
from services.cli.host import known_hosts

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Admin = Annotated[ApiKey, Depends(caller(Role.ADMIN))]
JsonObject = dict[str, Any]  # Any: JSON values


@router.get("/operations/{operation_id}", response_model=OperationOut, tags=["operations"])
async def show_operation(request: Request, key: Viewer, operation_id: UUID) -> JsonObject:
    """A long operation: running, succeeded (with its result) or failed (with its error)."""
    return (await context_of(request).operations.get(operation_id)).public()


@router.get(
    "/operations/{operation_id}/events",
    tags=["operations"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "progress events, then `end`"}},
)
async def follow_operation(request: Request, key: Viewer, operation_id: UUID) -> StreamingResponse:
    """Server-Sent Events: a `progress` event per thing heard, then `end` with the operation."""
    operations = context_of(request).operations
    await operations.get(operation_id)  # 404 before the stream starts
    return StreamingResponse(operations.follow(operation_id), media_type="text/event-stream")


@router.get("/api-keys", response_model=list[KeyOut], tags=["api-keys"])
async def list_keys(request: Request, key: Admin) -> list[JsonObject]:
    """Every key (never the key itself), revoked ones included."""
    return [each.public() for each in await context_of(request).keys.list()]


@router.post("/api-keys", status_code=201, response_model=CreatedKeyOut, tags=["api-keys"])
async def create_key(request: Request, key: Admin, body: CreateKeyRequest) -> JsonObject:
    """A new key; `key` is in this answer only."""
    from services.api.keys import Role as KeyRole

    context = context_of(request)
    created, secret = await context.keys.create(body.name, KeyRole(body.role), created_by=key.actor)
    await record(context.pool, key.actor, "api_key.create", str(created.key_id), name=created.name, role=body.role)
    return {**created.public(), "key": secret}


@router.delete("/api-keys/{key_id}", response_model=KeyOut, tags=["api-keys"])
async def revoke_key(request: Request, key: Admin, key_id: UUID) -> JsonObject:
    """Revoke a key; its console sessions end."""
    context = context_of(request)
    revoked = await context.keys.revoke(key_id)
    await record(context.pool, key.actor, "api_key.revoke", str(key_id), name=revoked.name)
    return revoked.public()


@router.get("/audit", tags=["api-keys"])
async def audit(request: Request, key: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[JsonObject]:
    """What the API changed itself (keys, dead letters, saga actions), newest first, with who did it."""
    return await recent(context_of(request).pool, limit)


@router.get("/hosts", response_model=list[HostInfo], tags=["hosts"])
async def list_hosts(request: Request, key: Viewer) -> tuple[HostInfo, ...]:
    """The hosts whose agents registered: zone, cluster, hypervisor, state and VMs."""
    context = context_of(request)
    return await known_hosts(context.asking(key), timeout=context.settings.query_timeout_seconds)


def _store(request: Request) -> PostgresSagaStore:
    context = context_of(request)
    return PostgresSagaStore(context.pool, schema=context.saga_schema)


@router.get("/sagas", tags=["sagas"])
async def list_sagas(
    request: Request,
    key: Viewer,
    status: SagaStatus | None = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[JsonObject]:
    """Saga instances, newest first."""
    async with _store(request).session() as session:
        instances = await session.list_instances(status=status, name=name, limit=limit)
    return [redact(instance_to_json(instance)) for instance in instances]


@router.get("/sagas/{saga_id}", tags=["sagas"])
async def show_saga(request: Request, key: Viewer, saga_id: UUID) -> JsonObject:
    """A saga's timeline: its steps with their attempts, its locks and the operators' actions."""
    async with _store(request).session() as session:
        instance = await session.get_instance(saga_id)
        if instance is None:
            raise NotFound(f"no saga {saga_id}", field="saga_id")
        export = {
            "instance": instance_to_json(instance),
            "steps": [step_to_json(step) for step in await session.load_steps(saga_id)],
            "locks": [
                {"resource": lock.resource, "token": lock.token, "expires_at": lock.expires_at.isoformat()}
                for lock in await session.list_locks(saga_id)
            ],
            "events": [
                {"at": event.at.isoformat(), "kind": event.kind, "detail": event.detail}
                for event in await session.list_events(saga_id)
            ],
        }
    return dict(redact(export))
