"""The bridge's Prometheus series: what it made of CloudStack's events, unknown types, disagreements, its link."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class BridgeMetrics:
    """Counters on the daemon's registry (one per process, so built once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter(
            "strata_bridge_events",
            "CloudStack events received, by what the bridge made of them.",
            ["outcome"],
            registry=registry,
        )
        self._unknown = Counter(
            "strata_bridge_unknown_types",
            "CloudStack action events of a type the mapping table lacks.",
            registry=registry,
        )
        self._disagreements = Counter(
            "strata_bridge_disagreements",
            "CloudStack reports that strata's state contradicts, by CloudStack event type.",
            ["event"],
            registry=registry,
        )
        self.connected = Gauge(
            "strata_bridge_connected", "1 while the bridge consumes CloudStack's exchange.", registry=registry
        )
        self._answers = Counter(
            "strata_bridge_answers", "Answers published on CloudStack's exchange.", registry=registry
        )

    def count(self, outcome: str) -> None:
        """One CloudStack message handled with this outcome."""
        self._events.labels(outcome).inc()

    def unknown_type(self) -> None:
        """One action event of a type the mapping table lacks (ignored)."""
        self._unknown.inc()

    def disagreement(self, event: str) -> None:
        """One report that strata's state contradicts."""
        self._disagreements.labels(event).inc()

    def answered(self, count: int) -> None:
        """Answers the broker confirmed."""
        self._answers.inc(count)
