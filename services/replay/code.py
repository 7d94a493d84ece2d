"""The code a replay runs against: every message and saga definition installed, or a module's changed sagas."""

import importlib
import os
import pkgutil
import sys

from sagas.definition import SagaRegistry
from schemas import InvalidArgument
from services.catalog import load_all_messages


def load_code() -> None:
    """Register every message and saga definition, so that payloads decode and sagas replay."""
    load_all_messages()
    definitions = importlib.import_module("sagas.definitions")
    for found in pkgutil.iter_modules(definitions.__path__):
        importlib.import_module(f"sagas.definitions.{found.name}")


def override_sagas(module: str) -> SagaRegistry:
    """The saga definitions registered in `module`'s `SAGAS` registry (a changed saga to try on old records).
    The module is looked for from the current directory too, as `python -m` does."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        raise InvalidArgument(f"cannot import {module}: {error}", field="sagas") from None
    found = getattr(loaded, "SAGAS", None)
    if not isinstance(found, SagaRegistry):
        raise InvalidArgument(f"{module} has no SAGAS (a sagas.definition.SagaRegistry)", field="sagas")
    return found
