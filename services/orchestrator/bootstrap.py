"""The orchestrator daemon, declared (`DAEMON`): the only place that builds its adapters.

It runs the saga coordinator (every registered saga, with its timer loop) and the announcer of operation outcomes.
`build_orchestrator` wires it on a given transport, units of work and saga store (tests run it so); the runner
builds it from the process's wiring for `strata run orchestrator`, `strata up` and the demo.
"""

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from sagas.coordinator import Coordinator
from sagas.definition import SagaRegistry, saga_registry
from sagas.ports import SagaStore
from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from schemas.sagas import StartSaga, StepFailed, StepSucceeded
from services.orchestrator.handlers import COMMAND_HANDLERS, EVENT_HANDLERS, SAGA_REPLIES
from services.orchestrator.metrics import SagaMetrics
from services.runtime.daemon import Daemon, Queue, Service, Wiring
from services.runtime.handlers import bind_context

COORDINATOR = "orchestrator"
OUTCOMES = "orchestrator.outcomes"
HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}


def build_orchestrator(
    transport: Transport,
    units: UnitOfWorkFactory,
    store: SagaStore,
    *,
    sagas: SagaRegistry = saga_registry,
    timer_poll: float = 0.1,
    prefetch: int = 64,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> Service:
    """Wire the orchestrator on `transport`, `units` and `store` (the store in the units' database)."""
    coordinator = Coordinator(
        transport,
        units,
        store,
        sagas=sagas,
        name=COORDINATOR,
        reply_types=SAGA_REPLIES,
        prefetch=prefetch,
        timer_poll=timer_poll,
        announce_ends=True,
    )
    coordinator.consumer.queue_kind = queue_kind
    outcomes = Consumer(
        transport,
        units,
        name=OUTCOMES,
        handlers=bind_context(HANDLERS, store),
        prefetch=prefetch,
        queue_kind=queue_kind,
    )
    return Service([outcomes, coordinator])


def build(wiring: Wiring) -> Service:
    """The orchestrator on the process's wiring, its saga store on the process's database pool."""
    bus = wiring.settings.bus
    service = build_orchestrator(
        wiring.transport,
        wiring.units,
        PostgresSagaStore(wiring.pool),
        prefetch=bus.prefetch,
        queue_kind=bus.queue_kind,
    )
    service.metrics.append(SagaMetrics(wiring.metrics, wiring.pool).refresh)
    return service


DAEMON = Daemon(
    name="orchestrator",
    summary="saga coordinators (revert a VM, snapshot a VM, ...) and their timers; announces operation outcomes",
    build=build,
    migrations=(migrate_sagas,),
    queues=(
        Queue(
            COORDINATOR,
            (StartSaga, *saga_registry.input_types(), StepSucceeded, StepFailed, *SAGA_REPLIES),
        ),
        Queue(OUTCOMES, tuple(HANDLERS)),
    ),
)
