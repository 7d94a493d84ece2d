"""`@saga(name, version)` and the registry of saga definitions.

An instance is pinned to the (name, version) it started with; old versions stay registered until their instances
have drained, so that a deploy never changes the code under a running saga.
"""

import inspect
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from schemas import Command, InvalidArgument, Message

if TYPE_CHECKING:
    from sagas.context import SagaContext

# The saga function takes its own input command class and returns its own result message (or None); the
# registry holds functions of every signature, so the parameters are typed by each saga, not here.
SagaFunction = Callable[["SagaContext", Any], Coroutine[Any, Any, Message | None]]
F = TypeVar("F", bound=SagaFunction)


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """A registered saga: its name, version, input command class and function."""

    name: str
    version: int
    input_type: type[Command]
    function: SagaFunction


class SagaRegistry:
    """Maps (name, version) to definitions, and input command types to the newest saga they start."""

    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], SagaDefinition] = {}

    def register(self, definition: SagaDefinition) -> None:
        """Add a definition; the same (name, version) twice is a mistake unless it is the same function."""
        key = (definition.name, definition.version)
        existing = self._definitions.get(key)
        if existing is not None and existing.function.__qualname__ != definition.function.__qualname__:
            raise ValueError(f"saga {definition.name} v{definition.version} is already registered")
        if not definition.input_type.message_type:
            raise TypeError(f"input of saga {definition.name} must be a registered command (use @message)")
        self._definitions[key] = definition

    def get(self, name: str, version: int | None = None) -> SagaDefinition | None:
        """The definition of `name` at `version`, or its newest version if `version` is None."""
        if version is not None:
            return self._definitions.get((name, version))
        versions = [d for (n, _), d in self._definitions.items() if n == name]
        return max(versions, key=lambda d: d.version) if versions else None

    def for_input(self, input_type: type[Message]) -> SagaDefinition | None:
        """The newest version of the saga that a command of `input_type` starts.

        Raises:
            InvalidArgument: several sagas take this input; such sagas start by name only (`saga.start`).
        """
        candidates = [d for d in self._definitions.values() if d.input_type is input_type]
        names = sorted({d.name for d in candidates})
        if len(names) > 1:
            raise InvalidArgument(
                f"{input_type.message_type} is the input of several sagas ({', '.join(names)}); start one by name",
                field="type",
            )
        return max(candidates, key=lambda d: d.version) if candidates else None

    def input_types(self) -> list[type[Command]]:
        """Every command type that starts a saga (the coordinator binds its queue to them)."""
        return sorted({d.input_type for d in self._definitions.values()}, key=lambda t: t.message_type)

    def __iter__(self) -> Iterator[SagaDefinition]:
        """Every definition, sorted by name and version."""
        return iter(sorted(self._definitions.values(), key=lambda d: (d.name, d.version)))


saga_registry = SagaRegistry()


def saga(name: str, version: int = 1, *, into: SagaRegistry = saga_registry) -> Callable[[F], F]:
    """Register an async function `(ctx, command) -> result` as saga `name` at `version`.

    The input command class is read from the annotation of the function's second parameter.
    """
    if not name or version < 1:
        raise ValueError("a saga needs a name and a version >= 1")

    def register(function: F) -> F:
        parameters = list(inspect.signature(function, eval_str=True).parameters.values())
        if len(parameters) != 2 or not isinstance(parameters[1].annotation, type):
            raise TypeError(f"saga {name} must be `async def f(ctx: SagaContext, command: SomeCommand)`")
        input_type = parameters[1].annotation
        if not issubclass(input_type, Command):
            raise TypeError(f"the input of saga {name} must be a Command, not {input_type.__name__}")
        into.register(SagaDefinition(name, version, input_type, function))
        return function

    return register
