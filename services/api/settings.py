"""The API daemon's settings, from `STRATA_API_*` environment variables."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Where the API and its console listen, and how long they wait for the services."""

    model_config = SettingsConfigDict(env_prefix="STRATA_API_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address the API and the web console listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Their port; 0 picks a free one (logged).")
    query_timeout_seconds: float = Field(default=15.0, gt=0, description="How long a listing waits for its service.")
    operation_timeout_seconds: float = Field(
        default=600.0, gt=0, description="How long a long operation (202) is followed before it is reported lost."
    )
    session_hours: float = Field(default=12.0, gt=0, description="How long a console session lasts after sign-in.")
    secure_cookies: bool = Field(
        default=False, description="Mark the console's cookie Secure (set it when the console is served over TLS)."
    )
    upload_max_bytes: int = Field(
        default=50 << 30, ge=1, description="The largest template or ISO an upload may send (413 past it)."
    )
    upload_dir: Path | None = Field(
        default=None, description="Where an upload is kept while the image stores fetch it (default: the temp dir)."
    )
    upload_listen: str = Field(
        default="127.0.0.1",
        description="Address the API serves an upload on while the zone's image stores fetch it; they must reach it.",
    )
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a live API key is trusted without a database look-up (0: every request looks it up); "
        "a key revoked through another API process is refused here at most this long after.",
    )
    owner_check_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a service seen consuming is not checked again before a query or command goes to it "
        "(0: every time); one that stopped meanwhile makes a request wait out its timeout instead of failing at once.",
    )
