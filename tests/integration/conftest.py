"""Fixtures of the integration tier beyond the shared ones (tests/conftest.py)."""

from collections.abc import AsyncIterator

import pytest

from tests.integration.cli_support import running_services


@pytest.fixture
async def strata_env(amqp_url: str, namespace: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    """Every service running in this test's namespace and database; the environment that points `strata` at them."""
    async with running_services(amqp_url, namespace, database_url) as env:
        yield env
