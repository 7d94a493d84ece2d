"""The API daemon's settings, from `STRATA_API_*` environment variables."""

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
