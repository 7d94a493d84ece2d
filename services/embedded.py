"""The embedded PostgreSQL of `strata demo`: a private server in a temporary directory (pgserver)."""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from schemas import Transient


@asynccontextmanager
async def embedded_postgres() -> AsyncIterator[str]:
    """Start a throw-away PostgreSQL and yield its URL; stop it and delete its files on exit."""
    base = Path(tempfile.mkdtemp(prefix="strata-pg-"))
    data_dir, runtime_dir = base / "data", base / "run"
    runtime_dir.mkdir(mode=0o700)
    # pgserver asks platformdirs for a runtime directory when it is imported; give it ours rather than a /tmp
    # default (and not the data directory, which initdb needs empty).
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    from pgserver.postgres_server import get_server

    try:
        server = await asyncio.to_thread(get_server, data_dir, cleanup_mode="stop")
    except Exception as error:  # pgserver raises plain exceptions from its subprocess handling
        shutil.rmtree(base, ignore_errors=True)
        raise Transient(f"the embedded PostgreSQL did not start: {error}") from error
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(base, ignore_errors=True)
