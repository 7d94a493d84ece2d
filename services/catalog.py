"""Imports every module that registers messages, so that the registry is complete."""

import importlib
import pkgutil

import schemas

# Modules of schemas/ that hold no messages of their own.
_NOT_MESSAGES = {"envelope", "errors", "ids", "registry", "asyncapi"}


def load_all_messages() -> None:
    """Import every message module of `schemas`, registering its commands and events."""
    for module in pkgutil.iter_modules(schemas.__path__):
        if module.name not in _NOT_MESSAGES:
            importlib.import_module(f"schemas.{module.name}")
