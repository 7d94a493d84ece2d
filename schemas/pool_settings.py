"""Changing a pool's settings after it was added (CloudStack's updateStoragePool): its plugin configuration
(credentials, tunables; only the fields given), its tags and its own capacity thresholds.

The configuration changes travel as `pool.add`'s did: write-only, left out of `repr`, never echoed in an event. The
storage service keeps no secrets, so the agent that holds the pool's sealed configuration merges the changes,
validates the whole against the plugin's model, checks the pool is still reachable with it, and only then keeps it;
the agents of the pool's cluster reopen their drivers with it. Events carry the names of what changed, never values.
"""

from typing import Any
from uuid import UUID

from pydantic import Field, model_validator

from schemas.agent import AgentCommand
from schemas.envelope import Command, Event
from schemas.errors import ErrorInfo
from schemas.registry import message
from schemas.storage import SECRET, PluginConfig, PoolThresholds, Tag


@message("pool.update")
class UpdatePool(Command):
    """Change a pool's configuration fields, tags or capacity thresholds; what is not given stays as it is."""

    pool_id: UUID
    config: PluginConfig = Field(
        default_factory=dict,
        repr=False,
        json_schema_extra=SECRET,
        description="Only the configuration fields to change (a new password, a timeout). May hold secrets.",
    )
    tags: frozenset[Tag] | None = Field(default=None, description="The pool's new tags (all of them); None: kept.")
    thresholds: PoolThresholds | None = Field(default=None, description="The pool's own thresholds; None: kept.")
    clear_thresholds: bool = Field(
        default=False, description="Drop the pool's own thresholds: the deployment's apply again."
    )

    @model_validator(mode="after")
    def _something(self) -> "UpdatePool":
        if not self.config and self.tags is None and self.thresholds is None and not self.clear_thresholds:
            raise ValueError("a pool update changes something: configuration fields, tags or thresholds")
        if self.thresholds is not None and self.clear_thresholds:
            raise ValueError("give thresholds or clear_thresholds, not both")
        return self


@message("pool.updated")
class PoolUpdated(Event):
    """A pool's settings changed; `changed` names what (configuration fields by name, `tags`, `thresholds`)."""

    pool_id: UUID
    changed: tuple[str, ...]
    tags: frozenset[str]
    thresholds: PoolThresholds | None = Field(description="The pool's own thresholds; None: the deployment's.")


@message("pool.update.failed")
class PoolUpdateFailed(Event):
    """A pool update was refused or could not be applied; nothing of it changed."""

    pool_id: UUID
    error: ErrorInfo


@message("agent.pool.reconfigure")
class ReconfigurePoolOnHost(AgentCommand):
    """Merge configuration changes into a pool's kept configuration, check them, keep them and reopen the pool."""

    pool_id: UUID
    plugin: str = Field(min_length=1, description="Name of the plugin that serves the pool.")
    changes: PluginConfig = Field(
        repr=False, json_schema_extra=SECRET, description="The configuration fields to change. May hold secrets."
    )

    def undeliverable(self, error: ErrorInfo) -> Event | None:
        """No agent takes it: the update fails, nothing changed."""
        return PoolReconfigureOnHostFailed(
            pool_id=self.pool_id, host=self.host or f"cluster {self.cluster_id}", error=error
        )


@message("agent.pool.reconfigured")
class PoolReconfiguredOnHost(Event):
    """An agent keeps the pool's new configuration and reached the pool with it."""

    pool_id: UUID
    host: str
    masked_config: dict[str, Any] = Field(description="The whole configuration now, its secrets masked.")


@message("agent.pool.reconfigure.failed")
class PoolReconfigureOnHostFailed(Event):
    """The changes were refused (a bad value, names its field) or the pool was not reachable with them."""

    pool_id: UUID
    host: str
    error: ErrorInfo
