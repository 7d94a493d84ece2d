"""The API's own request and response bodies (the services' models, PoolInfo and the rest, are answered as they
are). A pool's `config` is write-only: no response model has it."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.storage import PoolScope, PoolThresholds

RoleName = Literal["viewer", "operator", "admin"]


class OperationOut(BaseModel):
    """A long operation: poll it until `status` is not `running`, or follow `/events`."""

    operation_id: str
    kind: str = Field(description="What it does, e.g. `pool.add`.")
    target: str = Field(description="The object it acts on.")
    actor: str = Field(description="Who asked (`api:NAME(ROLE)`), as the journal records it.")
    status: Literal["running", "succeeded", "failed"]
    correlation_id: str | None = Field(description="The correlation id of its messages (`strata events history`).")
    progress: list[dict[str, Any]] = Field(description="What was heard so far, oldest first.")  # Any: JSON
    result: dict[str, Any] | None = Field(description="The outcome event, once it succeeded.")  # Any: JSON
    error: dict[str, Any] | None = Field(description="The error (class, code, message, field), once it failed.")
    created_at: str
    finished_at: str | None


class AddPoolRequest(BaseModel):
    """A primary storage pool to add (`strata pool add`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="The pool's name, unique in its zone.")
    plugin: str = Field(min_length=1, description="The plugin that serves it (GET /plugins).")
    config: dict[str, Any] = Field(  # Any: JSON values, checked against the plugin's own model
        default_factory=dict,
        json_schema_extra={"writeOnly": True},
        description="The plugin's configuration (its JSON Schema: GET /plugins/NAME). Never returned.",
    )
    scope: PoolScope = Field(default=PoolScope.CLUSTER, description="From where the pool is reachable.")
    zone: str = Field(default="default", min_length=1, description="The zone (a UUID or a name).")
    cluster: str | None = Field(
        default=None, description="The cluster (cluster scope; for host scope, default: the host's)."
    )
    host: str | None = Field(default=None, description="The host (host scope).")
    hypervisors: list[str] = Field(default_factory=lambda: ["kvm"], description="The hypervisors it serves.")
    tags: list[str] = Field(default_factory=list, description="Storage tags.")
    thresholds: PoolThresholds | None = Field(
        default=None, description="The pool's own capacity thresholds; none: the deployment's."
    )


class CreateVolumeRequest(BaseModel):
    """A volume to create (`strata volume create`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    size: str = Field(description="Its virtual size: `10G`, `512M` or bytes.")
    zone: str = Field(default="default", min_length=1)
    pool: str | None = Field(default=None, description="Place it on this pool (id or name) instead of asking.")
    cluster: str | None = None
    host: str | None = None
    hypervisor: str | None = None
    tags: list[str] = Field(default_factory=list)
    vm: str | None = Field(default=None, description="The VM it belongs to (id or name, GET /vms).")


class CreateSnapshotRequest(BaseModel):
    """A snapshot to take of a volume (`strata snapshot create`)."""

    model_config = ConfigDict(extra="forbid")

    volume: str = Field(min_length=1, description="The volume's id or name.")
    name: str | None = Field(default=None, description="Its name (default: the volume's name and a suffix).")


class CreateKeyRequest(BaseModel):
    """An API key to create (admin only)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    role: RoleName


class KeyOut(BaseModel):
    """An API key as listed (never the key)."""

    key_id: str
    name: str
    role: RoleName
    created_at: str
    created_by: str
    revoked: bool


class CreatedKeyOut(KeyOut):
    """A new key: `key` is shown this once and never again."""

    key: str


class PluginOut(BaseModel):
    """An installed plugin: its manifest, whether it fits what was asked (and why not), its config form."""

    name: str
    version: str
    vendor: str
    description: str
    roles: list[str]
    protocols: list[str]
    scopes: list[str]
    hypervisors: list[str]
    locality: str
    capabilities: list[str]
    thresholds: dict[str, float]
    fits: bool = Field(description="Whether it fits the role, scope and hypervisor asked for.")
    reason: str | None = Field(description="Why it does not fit, when it does not.")
    config_schema: dict[str, Any] = Field(description="Its config model's JSON Schema.")  # Any: JSON Schema
    config_fields: list[dict[str, Any]] = Field(description="The form, field by field.")  # Any: JSON values
