"""How the agent answers a command: the domain event on success; on failure the `...Failed` event, or StepFailed
when a saga sent the command; a `Transient` error goes back to the bus to be retried.

A plugin crashed at an armed fault point (`InjectedCrash`) is answered as a failure too: in a test it stands for
the operation dying midway, and the saga (or the service) must see it rather than wait for a reply forever.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog

from bus.ports import UnitOfWork, UnitOfWorkFactory
from plugins.sdk.faults import InjectedCrash
from sagas.participant import reply_failure, reply_success
from schemas import Envelope, Event
from schemas.errors import ErrorInfo, StrataError, Transient
from services.agent import repository
from services.agent.drivers import PoolDrivers
from services.agent.ports import Hypervisor
from services.agent.staging import StagingArea

log = structlog.get_logger(__name__)

Work = Callable[[], Awaitable[Event]]
Failed = Callable[[ErrorInfo], Event]


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

    @property
    def staging_area(self) -> StagingArea:
        """The staging area of its copies."""
        if self.staging is None:
            self.staging = StagingArea(self.host)
        return self.staging

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
        """Check the fencing token, do `work`, and answer; return the success event (None after a failure)."""
        try:
            await repository.check_fencing(uow.connection, list(resources), envelope.fencing_token)
            outcome = await work()
        except Transient:
            raise
        except StrataError as error:
            self._answer_failure(uow, envelope, error, failed)
            return None
        except InjectedCrash as crash:
            self._answer_failure(uow, envelope, StrataError(str(crash)), failed)
            return None
        except Exception as error:  # a plugin's unexpected error must still reach the saga or service waiting
            # Its text stays in the agent's (redacted) log: an untranslated driver error may quote anything.
            log.error("agent operation failed unexpectedly", error_class=type(error).__name__, error=str(error))
            unexpected = StrataError(f"unexpected {type(error).__name__} in the agent (see agent@{self.host}'s log)")
            self._answer_failure(uow, envelope, unexpected, failed)
            return None
        if envelope.saga_id is not None:
            reply_success(uow, envelope, outcome, producer=self.producer)
        elif emit_outside_saga:
            uow.emit(Envelope.wrap(outcome, cause=envelope, producer=self.producer))
        return outcome

    def _answer_failure(self, uow: UnitOfWork, envelope: Envelope, error: StrataError, failed: Failed) -> None:
        log.warning("agent command refused or failed", code=error.code, error=error.message)
        if envelope.saga_id is not None:
            reply_failure(uow, envelope, error, producer=self.producer)
        else:
            uow.emit(Envelope.wrap(failed(error.info()), cause=envelope, producer=self.producer))
