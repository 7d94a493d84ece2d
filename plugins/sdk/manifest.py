"""`PluginManifest`: what a plugin tells the orchestrator about itself, validated when the plugin loads."""

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugins.sdk.capabilities import (
    BACKUP_CAPABILITIES,
    PRIMARY_CAPABILITIES,
    SNAPSHOT_CAPABILITIES,
    Capability,
    Locality,
    Role,
    Scope,
)
from plugins.sdk.config import CapacityThresholds, PluginConfig

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([.+-][0-9A-Za-z.]+)?$")


class PluginManifest(BaseModel):
    """Who the plugin is, what it serves, where it fits, what it can do and what it needs to be configured.

    The orchestrator filters on roles, scopes and hypervisors to show an operator the plugins that fit a cluster,
    then renders `config_model`'s JSON Schema as the form to fill in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="Unique name, also the entry point name in `strata.plugins` (e.g. `qcow2fs`).")
    vendor: str = Field(min_length=1, description="Who ships and supports the plugin.")
    version: str = Field(description="The plugin's version, e.g. 1.2.0.")
    description: str = Field(default="", description="One line for listings.")
    roles: frozenset[Role] = Field(min_length=1, description="What the storage serves: primary, backup, image.")
    protocols: frozenset[str] = Field(min_length=1, description="How hosts reach it: file, nfs, iscsi, rbd, s3...")
    scopes: frozenset[Scope] = Field(min_length=1, description="How far one pool reaches.")
    hypervisors: frozenset[str] = Field(
        default=frozenset(), description="Hypervisors that can use it (kvm, vmware, xenserver); empty: not for hosts."
    )
    locality: Locality = Field(description="Local to one host, or shared between hosts.")
    capabilities: frozenset[Capability] = Field(default=frozenset(), description="What it does natively.")
    config_model: type[PluginConfig] = Field(description="The pydantic model of one pool's configuration.")
    thresholds: CapacityThresholds = Field(default_factory=CapacityThresholds, description="Default thresholds.")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 2-40 characters: lowercase letters, digits, '-' or '_', starting with a letter")
        return value

    @field_validator("version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError("must look like 1.2 or 1.2.3")
        return value

    @field_validator("protocols", "hypervisors")
    @classmethod
    def _lowercase_words(cls, value: frozenset[str]) -> frozenset[str]:
        for word in value:
            if not re.match(r"^[a-z][a-z0-9_-]*$", word):
                raise ValueError(f"{word!r} must be a lowercase word")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "PluginManifest":
        if Role.PRIMARY not in self.roles:
            misplaced = self.capabilities & (SNAPSHOT_CAPABILITIES | PRIMARY_CAPABILITIES)
            if misplaced:
                raise ValueError(f"capabilities {sorted(misplaced)} need the primary role")
        if Role.BACKUP not in self.roles and self.capabilities & BACKUP_CAPABILITIES:
            raise ValueError(f"capabilities {sorted(self.capabilities & BACKUP_CAPABILITIES)} need the backup role")
        if Role.PRIMARY in self.roles and not self.hypervisors:
            raise ValueError("a primary storage plugin must name the hypervisors that can use it")
        if self.locality is Locality.LOCAL and self.scopes - {Scope.HOST}:
            raise ValueError("local storage can only have the host scope")
        return self

    def summary(self) -> dict[str, object]:
        """The manifest as plain JSON data (the config model as its JSON Schema), for listings and APIs."""
        return {
            "name": self.name,
            "vendor": self.vendor,
            "version": self.version,
            "description": self.description,
            "roles": sorted(self.roles),
            "protocols": sorted(self.protocols),
            "scopes": sorted(self.scopes),
            "hypervisors": sorted(self.hypervisors),
            "locality": self.locality.value,
            "capabilities": sorted(self.capabilities),
            "thresholds": self.thresholds.model_dump(),
            "config_schema": self.config_model.model_json_schema(),
        }
