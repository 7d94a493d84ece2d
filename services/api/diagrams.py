"""A saga's sequence diagram on its console page: the replay tool's own (services.replay), drawn from the journal
(every message of the saga's operation, payloads masked) as a self-contained SVG, nothing fetched to show it."""

from uuid import UUID

import structlog

from bus.postgres.pool import Pool
from schemas import StrataError
from services.replay.diagram import svg
from services.replay.reading import read
from services.replay.saga_records import load_sagas
from services.replay.selection import Selection
from services.replay.timeline import timeline

log = structlog.get_logger(__name__)
MESSAGES = 400  # a saga's operation is tens of messages; a diagram of more would not be read


async def saga_diagram(pool: Pool, saga_id: UUID, *, saga_schema: str) -> str | None:
    """The SVG of the saga's operation, or None when the journal holds nothing of it (or cannot be read)."""
    try:
        found, _ = await read(pool, Selection(saga_ids=(saga_id,), whole_operations=True), limit=MESSAGES)
        if not found:
            return None
        sagas = await load_sagas(pool, [saga_id], schema=saga_schema)
        return svg(timeline(found, sagas), title=f"saga {saga_id}")
    except StrataError as error:  # the page still shows the timeline table without its diagram
        log.warning("no sequence diagram", saga_id=str(saga_id), error=error.message)
        return None
