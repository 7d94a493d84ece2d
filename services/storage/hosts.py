"""The host registry: agents' heartbeats recorded, and `host.list` answered with each host's state and VMs.

The storage service owns it because it is the service that places pools and volumes on hosts and clusters and
routes the agents' commands to them. A host is Disconnected once its agent missed `MISSED_HEARTBEATS` heartbeats;
the time is the database's (when a heartbeat was heard), so an agent's clock cannot make a host look alive.
"""

import json
from typing import Any

from pydantic import TypeAdapter

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.hosts import (
    MISSED_HEARTBEATS,
    HostHeartbeat,
    HostIdentity,
    HostInfo,
    HostsListed,
    HostState,
    HostVm,
    ListHosts,
)
from services.storage.context import Storage
from services.storage.repository import SCHEMA

_VMS = TypeAdapter(tuple[HostVm, ...])


async def host_heartbeat(event: HostHeartbeat, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Register the host or refresh it; a heartbeat older than the one recorded changes nothing."""
    await uow.connection.execute(
        f"INSERT INTO {SCHEMA}.hosts (host, cluster_id, identity, interval_seconds, vms, sent_at) "
        "VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6) "
        "ON CONFLICT (host) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, identity = EXCLUDED.identity, "
        "interval_seconds = EXCLUDED.interval_seconds, vms = EXCLUDED.vms, sent_at = EXCLUDED.sent_at, "
        f"last_seen = now() WHERE {SCHEMA}.hosts.sent_at <= EXCLUDED.sent_at",
        event.identity.host,
        event.identity.cluster_id,
        event.identity.model_dump_json(),
        event.interval_seconds,
        _VMS.dump_json(event.vms).decode(),
        envelope.occurred_at,
    )


async def list_hosts(query: ListHosts, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> HostsListed:
    """Every registered host by name, Up or Disconnected."""
    rows = await uow.connection.fetch(
        f"SELECT identity, vms, first_seen, last_seen, "
        f"now() - last_seen > make_interval(secs => interval_seconds * {MISSED_HEARTBEATS}) AS missed "
        f"FROM {SCHEMA}.hosts ORDER BY host"
    )
    return HostsListed(hosts=tuple(_info(row) for row in rows))


def _info(row: Any) -> HostInfo:  # Any: an asyncpg record
    return HostInfo(
        identity=HostIdentity.model_validate(json.loads(row["identity"])),
        state=HostState.DISCONNECTED if row["missed"] else HostState.UP,
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        vms=_VMS.validate_json(row["vms"]),
    )
