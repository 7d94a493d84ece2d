"""Plugin call durations: every coroutine method of an open plugin driver is timed into one histogram,
`strata_plugin_call_seconds{plugin, call, outcome}` (outcome `ok` or the error's class), on the daemon's registry."""

import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from plugins.sdk.protocols import Driver

# qemu-img calls run from milliseconds (create) to many minutes (a convert of a large volume).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class PluginCallMetrics:
    """The histogram of plugin call durations, and what wraps a driver so that its calls are timed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "strata_plugin_call_seconds",
            "Time of each call into a storage plugin, by plugin, call and outcome.",
            ["plugin", "call", "outcome"],
            buckets=_BUCKETS,
            registry=registry,
        )

    def timed(self, driver: Driver, plugin: str) -> Driver:
        """Time every public coroutine method of `driver` from now on, and return it. The methods are wrapped on the
        instance itself, so every protocol it meets (`isinstance` included) stays met."""
        for name in dir(driver):
            method = getattr(driver, name) if not name.startswith("_") else None
            if inspect.iscoroutinefunction(method):
                try:
                    setattr(driver, name, self._timing(plugin, name, method))
                except AttributeError:  # a driver class with __slots__ keeps its calls untimed
                    break
        return driver

    def _timing(self, plugin: str, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:  # the driver method's own signature
            started = perf_counter()
            outcome = "cancelled"
            try:
                result = await call(*args, **kwargs)
                outcome = "ok"
                return result
            except Exception as error:
                outcome = type(error).__name__
                raise
            finally:
                self.seconds.labels(plugin, name, outcome).observe(perf_counter() - started)

        return timed
