"""The bridge daemon is declared like the others, and `strata up` runs it only when CloudStack's exchange is named."""

import pytest

from services.bridge.settings import EXCHANGE_VARIABLE, BridgeSettings
from services.daemons import EVERY_DAEMON, declared, together

pytestmark = pytest.mark.unit


def test_strata_up_runs_the_bridge_only_when_cloudstacks_exchange_is_named() -> None:
    assert "bridge" in EVERY_DAEMON
    assert declared("bridge").name == "bridge"
    assert "bridge" not in together({})
    assert "bridge" in together({EXCHANGE_VARIABLE: "cloudstack-events"})
    assert [name for name in together({}) if name != "bridge"] == [name for name in EVERY_DAEMON if name != "bridge"]


def test_its_settings_default_to_cloudstacks_documented_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXCHANGE_VARIABLE, raising=False)
    assert BridgeSettings().exchange == "cloudstack-events"
    assert BridgeSettings().amqp_url is None  # strata's own broker
    monkeypatch.setenv(EXCHANGE_VARIABLE, "cs-prod")
    assert BridgeSettings().exchange == "cs-prod"
