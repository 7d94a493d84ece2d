"""The API's server part: a port already in use is refused with what to set, instead of uvicorn ending the whole
process; port 0 is a free one, told after start."""

import socket

import pytest
from fastapi import FastAPI

from schemas.errors import FailedPrecondition
from services.api.server import ApiServer

pytestmark = pytest.mark.unit


async def test_a_port_in_use_is_refused_naming_the_setting_and_port_0_picks_one() -> None:
    server = ApiServer(FastAPI(), host="127.0.0.1", port=0)
    await server.start()
    try:
        assert server.port > 0
        taken = ApiServer(FastAPI(), host="127.0.0.1", port=server.port)
        with pytest.raises(FailedPrecondition) as refused:
            await taken.start()
        assert refused.value.field == "STRATA_API_PORT"
        assert str(server.port) in refused.value.message
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass  # the first one still serves
    finally:
        await server.stop()
