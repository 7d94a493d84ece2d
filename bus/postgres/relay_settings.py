"""How the outbox relay batches, polls, backs off and gives up, and what one pass did."""

import math
from dataclasses import dataclass

from schemas.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How the relay batches, polls and backs off."""

    batch_size: int = 500
    poll_interval: float = 1.0
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    sent_retention: float = 3600.0
    """Seconds a sent outbox row is kept (for an operator's look) before housekeeping deletes it."""
    inbox_retention: float = 7 * 86400.0
    """Seconds an inbox row is kept: a redelivery later than this would run its handler again."""
    housekeeping_interval: float = 300.0
    claim_lease: float = 45.0
    """Seconds a claimed row is left to its relay before another may claim it: longer than a publish may wait for
    the broker (30 s by default), short because rows of a relay that died wait this long to go out."""
    coalesce: float = 0.002
    """Seconds the relay waits after a wake-up before claiming, so that commits arriving together share a batch."""
    undeliverable_after: float = 60.0
    """Seconds an unroutable command is retried (no queue takes it: a mistyped host or cluster, a service not
    started yet) before the relay gives up on it and fails it visibly (see `bus.postgres.undeliverable`)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InvalidArgument("batch_size must be at least 1", field="batch_size")
        if not 0 < self.poll_interval <= 3600:
            raise InvalidArgument("poll_interval must be between 0 and 3600 seconds", field="poll_interval")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise InvalidArgument("back-off must satisfy 0 < backoff_initial <= backoff_max", field="backoff_initial")
        if min(self.sent_retention, self.inbox_retention) < 0 or self.housekeeping_interval <= 0:
            raise InvalidArgument("retentions must not be negative and housekeeping_interval must be positive")
        if self.claim_lease <= 0:
            raise InvalidArgument("claim_lease must be positive", field="claim_lease")
        if not 0 <= self.coalesce <= 1:
            raise InvalidArgument("coalesce must be between 0 and 1 second", field="coalesce")
        if self.undeliverable_after < 0:
            raise InvalidArgument("undeliverable_after must not be negative", field="undeliverable_after")

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before publishing again a row that failed `attempts` times (1, 2, ...)."""
        exponent = min(attempts - 1, 32)  # bounded so that the power cannot overflow
        return min(self.backoff_initial * math.pow(2, exponent), self.backoff_max)


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one relay pass did."""

    claimed: int
    published: int
    failed: int
