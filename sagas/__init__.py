"""The saga engine: straight-line async saga code made durable by a journal and deterministic replay.

Write a saga with `@saga(name, version)` and the `SagaContext` operations; run it with a `Coordinator` on the bus
and a `SagaStore` (`PostgresSagaStore`, or `MemorySagaStore` for tests and the demo).
"""

from sagas.context import SagaContext
from sagas.definition import SagaDefinition, SagaRegistry, saga, saga_registry
from sagas.records import RetryPolicy, SagaStatus

__all__ = ["RetryPolicy", "SagaContext", "SagaDefinition", "SagaRegistry", "SagaStatus", "saga", "saga_registry"]
