"""The agent's settings, from `STRATA_*` environment variables (or given by `strata run agent --host --cluster`)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_OPERATION_DEADLINE_SECONDS = 3600.0


class AgentSettings(BaseSettings):
    """Where the agent runs and what it connects to."""

    model_config = SettingsConfigDict(env_prefix="STRATA_AGENT_", frozen=True, extra="ignore")

    host: str = Field(default="localhost", min_length=1, description="This host's name (its queue's name).")
    cluster: str = Field(default="default", min_length=1, description="The cluster the host belongs to.")
    libvirt_uri: str = Field(default="test:///default", description="The hypervisor's libvirt URI.")
    zone: str = Field(default="default", min_length=1, description="The zone the host is in (a name or a UUID).")
    hypervisor: str = Field(default="kvm", min_length=1, description="The hypervisor's kind, as plugins name it.")
    heartbeat_seconds: float = Field(
        default=30.0, gt=0, description="How often the agent tells the storage service it is alive (and its VMs)."
    )
    operation_deadline_seconds: float = Field(
        default=DEFAULT_OPERATION_DEADLINE_SECONDS,
        gt=0,
        description="How long a plugin or hypervisor call may take unless its command asks for another deadline: "
        "past it the work is stopped and the command answered DeadlineExceeded.",
    )
    fault_points: tuple[str, ...] = Field(
        default=(),
        description="Plugin fault points to arm at start (tests only): each crashes the operation once, and the "
        "agent answers with a failure.",
    )
