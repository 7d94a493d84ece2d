"""How the agent runs and answers a command: the intent committed first (fencing, the operation's row), the work
with no transaction open and within its deadline, then the answer with the result (see `operations`). The answer is
the domain event on success; on failure the `...Failed` event, or StepFailed when a saga sent the command; a
`Transient` error goes back to the bus to be retried.

Every command's work has a deadline: `Agent.deadline_seconds` (STRATA_AGENT_OPERATION_DEADLINE_SECONDS), or the
command's own `deadline_seconds` where it carries one (a long copy asks for more). Past it the work is cancelled
(qemu-img is killed and reaped, an S3 request dropped) and the command answered `DeadlineExceeded`. The consumer
runtime's deadline for the handler (`bus.ports.handler_deadline`) is kept `RECORDING_MARGIN_SECONDS` longer, so that
the agent, not the runtime, ends a late operation, and answers it.

A plugin crashed at an armed fault point (`InjectedCrash`) is answered as a failure too: in a test it stands for
the operation dying midway, and the saga (or the service) must see it rather than wait for a reply forever.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog

from bus.ports import UnitOfWork, UnitOfWorkFactory
from plugins.sdk.deadlines import within
from plugins.sdk.faults import InjectedCrash
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Event
from schemas.errors import ErrorInfo, FailedPrecondition, StrataError, Transient
from services.agent import repository
from services.agent.drivers import PoolDrivers
from services.agent.operations import StagedUnit
from services.agent.ports import Hypervisor
from services.agent.settings import DEFAULT_OPERATION_DEADLINE_SECONDS
from services.agent.staging import StagingArea

log = structlog.get_logger(__name__)

Work = Callable[[], Awaitable[Event]]
Failed = Callable[[ErrorInfo], Event]
RECORDING_MARGIN_SECONDS = 15.0
"""How much longer than its work's deadline a handler may run: the intent and the result's transaction."""


def vm_resource(vm_id: UUID) -> str:
    """A VM's fencing resource (the revert saga locks the same name)."""
    return f"vm:{vm_id}"


def volume_resource(volume_id: UUID) -> str:
    """A volume's fencing resource (the sagas lock the same name)."""
    return f"volume:{volume_id}"


@dataclass
class Agent:
    """What the agent's handlers work with: who it is, its pools' drivers and its hypervisor."""

    host: str
    cluster: str
    drivers: PoolDrivers
    hypervisor: Hypervisor
    units: UnitOfWorkFactory | None = None
    """Where progress events of long copies are committed, each on its own (None: progress is not published)."""
    staging: StagingArea | None = None
    """Where copies keep their staging files (None: under the system's temporary directory, by host)."""
    deadline_seconds: float = DEFAULT_OPERATION_DEADLINE_SECONDS
    """The deadline of a command's work unless the command carries its own `deadline_seconds`."""

    @property
    def staging_area(self) -> StagingArea:
        """The staging area of its copies."""
        if self.staging is None:
            self.staging = StagingArea(self.host)
        return self.staging

    @property
    def handler_deadline_seconds(self) -> float:
        """What the agent's handlers ask of the consumer runtime: the default work deadline and the margin."""
        return self.deadline_seconds + RECORDING_MARGIN_SECONDS

    @property
    def producer(self) -> str:
        """`agent@<host>`, the producer of everything the agent emits."""
        return f"agent@{self.host}"

    async def run(
        self,
        uow: UnitOfWork,
        envelope: Envelope,
        work: Work,
        failed: Failed,
        *,
        resources: Sequence[str] = (),
        emit_outside_saga: bool = True,
    ) -> Event | None:
        """Record the intent (fencing checked), do `work` within its deadline, and answer with the result; return the
        success event (None after a failure)."""
        unit = _staged(uow)
        try:
            await self._intend(unit, envelope, resources)
            outcome = await within(self.work_deadline(envelope), work(), f"{envelope.type} on agent@{self.host}")
        except Transient:
            raise
        except StrataError as error:
            self._answer_failure(unit, envelope, error, failed)
            return None
        except InjectedCrash as crash:
            self._answer_failure(unit, envelope, StrataError(str(crash)), failed)
            return None
        except Exception as error:  # a plugin's unexpected error must still reach the saga or service waiting
            # Its text stays in the agent's (redacted) log: an untranslated driver error may quote anything.
            log.error("agent operation failed unexpectedly", error_class=type(error).__name__, error=str(error))
            unexpected = StrataError(f"unexpected {type(error).__name__} in the agent (see agent@{self.host}'s log)")
            self._answer_failure(unit, envelope, unexpected, failed)
            return None
        if envelope.saga_id is not None:
            reply_success(unit, envelope, outcome, producer=self.producer)
        elif emit_outside_saga:
            unit.emit(Envelope.wrap(outcome, cause=envelope, producer=self.producer))
        _finish(unit, envelope, "succeeded", outcome.message_type, None)
        return outcome

    def work_deadline(self, envelope: Envelope) -> float:
        """Seconds the command's work may take: what it asks (`deadline_seconds`), else the agent's default; never so
        long that the consumer runtime's deadline (the larger of the handler's and the message's) ends it first."""
        asked = getattr(envelope.payload, "deadline_seconds", None)
        if not isinstance(asked, int | float) or isinstance(asked, bool):
            return self.deadline_seconds
        return min(float(asked), max(self.handler_deadline_seconds, float(asked)) - RECORDING_MARGIN_SECONDS)

    @staticmethod
    async def _intend(unit: StagedUnit, envelope: Envelope, resources: Sequence[str]) -> None:
        """Check the fencing token and record the operation as running, committed before the work starts."""
        if unit.database is None:
            if envelope.fencing_token is not None:
                raise FailedPrecondition("this agent has no database to check a fencing token in")
            return
        async with unit.transaction() as connection:
            await repository.check_fencing(connection, list(resources), envelope.fencing_token)
            await repository.start_operation(connection, envelope.message_id, envelope.type, unit.consumer)

    def _answer_failure(self, unit: StagedUnit, envelope: Envelope, error: StrataError, failed: Failed) -> None:
        log.warning("agent command refused or failed", code=error.code, error=error.message)
        if envelope.saga_id is not None:
            reply_failure(unit, envelope, error, producer=self.producer)
            outcome_type = None
        else:
            answer = failed(error.info())
            unit.emit(Envelope.wrap(answer, cause=envelope, producer=self.producer))
            outcome_type = answer.message_type
        _finish(unit, envelope, "failed", outcome_type, error.code)


def _staged(uow: UnitOfWork) -> StagedUnit:
    if not isinstance(uow, StagedUnit):
        raise TypeError("the agent's handlers run on staged units of work (build_agent wires StagedUnits)")
    return uow


def _finish(unit: StagedUnit, envelope: Envelope, state: str, outcome_type: str | None, error_code: str | None) -> None:
    """Record the operation's result with the answer (nothing to record on an agent without a database)."""
    if unit.database is not None:
        unit.defer(repository.FINISH_OPERATION, envelope.message_id, state, outcome_type, error_code)
