"""The agent's settings, from `STRATA_*` environment variables (or given by `strata run agent --host --cluster`)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """Where the agent runs and what it connects to."""

    model_config = SettingsConfigDict(env_prefix="STRATA_AGENT_", frozen=True, extra="ignore")

    host: str = Field(default="localhost", min_length=1, description="This host's name (its queue's name).")
    cluster: str = Field(default="default", min_length=1, description="The cluster the host belongs to.")
    libvirt_uri: str = Field(default="test:///default", description="The hypervisor's libvirt URI.")
    fault_points: tuple[str, ...] = Field(
        default=(),
        description="Plugin fault points to arm at start (tests only): each crashes the operation once, and the "
        "agent answers with a failure.",
    )
