"""The base of every plugin's configuration model, and the capacity thresholds a manifest defaults."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class PluginConfig(BaseModel):
    """Base of a plugin's config model: one instance describes one pool (or one backup or image store).

    Subclass it with the fields an operator fills in when adding the storage; use `SecretStr` for passwords and keys
    (they are then marked secret in the CLI and API forms, and never printed), and `Field(description=...)` on every
    field (the description is the form's help text). Unknown fields are refused, so a typo is an error, not a
    silently ignored setting.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityThresholds(BaseModel):
    """When the orchestrator warns about a pool and when it stops placing new volumes on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_used_fraction: float = Field(default=0.75, gt=0, le=1, description="Warn when this fraction is used.")
    stop_allocation_fraction: float = Field(
        default=0.85, gt=0, le=1, description="Place no new volume once this fraction is used."
    )
    overprovisioning_factor: float = Field(
        default=2.0, ge=1, description="Virtual size allowed per byte of capacity (thin-provisioned storage)."
    )

    @model_validator(mode="after")
    def _warn_before_stop(self) -> "CapacityThresholds":
        if self.warn_used_fraction > self.stop_allocation_fraction:
            raise ValueError("warn_used_fraction must not exceed stop_allocation_fraction")
        return self


IMMUTABLE: dict[str, Any] = {"x-strata-immutable": True}
"""`Field(json_schema_extra=IMMUTABLE)` marks a configuration field that cannot change once the pool is added (where
its data lives: a path, a bucket); `strata pool update` refuses it, naming it."""


def immutable_fields(schema: dict[str, Any]) -> set[str]:  # Any: a JSON Schema is arbitrary JSON
    """Names of the top-level properties of a config JSON Schema marked `IMMUTABLE`."""
    return {name for name, prop in schema.get("properties", {}).items() if prop.get("x-strata-immutable")}


def secret_fields(schema: dict[str, Any]) -> set[str]:  # Any: a JSON Schema is arbitrary JSON
    """Names of the top-level properties of a config JSON Schema that hold secrets (`SecretStr` fields)."""
    secrets: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        variants = [prop, *prop.get("anyOf", [])]
        if any(v.get("format") == "password" or v.get("writeOnly") for v in variants):
            secrets.add(name)
    return secrets


def reveal(value: SecretStr | str) -> str:
    """The plain value of a secret, for the adapter that must send it to the storage (and nowhere else)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value
