"""Runtime settings: CloudStack's names and defaults, read from STRATA_*, bad values refused, secrets hidden."""

import os

import pytest
from pydantic import ValidationError

from services.runtime.settings import RuntimeSettings

pytestmark = pytest.mark.unit

CLOUDSTACK_DEFAULTS = {
    "pool.storage.capacity.disablethreshold": 0.85,
    "pool.storage.allocated.capacity.disablethreshold": 0.85,
    "storage.overprovisioning.factor": 2.0,
    "snapshot.delta.max": 16,
    "storage.stats.interval": 60_000,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STRATA_"):
            monkeypatch.delenv(name)


def test_cloudstack_settings_have_cloudstacks_names_and_defaults() -> None:
    assert RuntimeSettings().cloudstack_settings() == CLOUDSTACK_DEFAULTS


def test_each_cloudstack_setting_is_read_from_its_strata_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_POOL_STORAGE_CAPACITY_DISABLETHRESHOLD", "0.9")
    monkeypatch.setenv("STRATA_POOL_STORAGE_ALLOCATED_CAPACITY_DISABLETHRESHOLD", "0.7")
    monkeypatch.setenv("STRATA_STORAGE_OVERPROVISIONING_FACTOR", "3")
    monkeypatch.setenv("STRATA_SNAPSHOT_DELTA_MAX", "4")
    settings = RuntimeSettings()
    assert settings.cloudstack_settings()["snapshot.delta.max"] == 4
    thresholds = settings.capacity_thresholds()
    assert (
        thresholds.capacity_disable_threshold,
        thresholds.allocated_capacity_disable_threshold,
        thresholds.overprovisioning_factor,
    ) == (0.9, 0.7, 3.0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRATA_POOL_STORAGE_CAPACITY_DISABLETHRESHOLD", "1.5"),
        ("STRATA_POOL_STORAGE_ALLOCATED_CAPACITY_DISABLETHRESHOLD", "0"),
        ("STRATA_STORAGE_OVERPROVISIONING_FACTOR", "0.5"),
        ("STRATA_SNAPSHOT_DELTA_MAX", "-1"),
        ("STRATA_HEALTH_PORT", "70000"),
        ("STRATA_LOG_LEVEL", "CHATTY"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        RuntimeSettings()
    assert variable.removeprefix("STRATA_").lower() in str(refused.value)


def test_the_database_url_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_DATABASE_URL", "postgresql://strata:hunter2@db:5432/strata")
    settings = RuntimeSettings()
    assert settings.database_url.get_secret_value() == "postgresql://strata:hunter2@db:5432/strata"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_defaults_suit_a_single_machine() -> None:
    settings = RuntimeSettings()
    assert settings.host
    assert (settings.health_host, settings.health_port, settings.log_level) == ("127.0.0.1", 9464, "INFO")
    assert settings.shutdown_grace_seconds == 30
