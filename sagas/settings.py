"""Saga engine settings, read from the environment (`STRATA_SAGA_*`) by the coordinator, given explicitly by tests."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STEP_TIMEOUT = 300.0


class SagaSettings(BaseSettings):
    """How long the engine waits. Every field can be set as `STRATA_SAGA_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="STRATA_SAGA_", frozen=True, extra="ignore")

    step_timeout: float = Field(
        default=DEFAULT_STEP_TIMEOUT,
        gt=0,
        description="Seconds a step, query or compensation waits for a reply to one attempt when it names no timeout "
        "of its own; then it is probed (if it has a probe), retried, or failed and compensated. A step that takes "
        "longer (a data copy) asks for more with `ctx.step(..., timeout=...)`.",
    )
