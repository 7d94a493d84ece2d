"""Every outcome an API operation waits for is one the API's consumer records, so that an operation is finished
even when the API process that followed it stopped first (read from the routes' source: a pair named as
`success=`/`failure=` or handed to `Tracker.sent`)."""

import ast
from pathlib import Path

import pytest

from services.api.outcomes import EVENT_HANDLERS, RECORDED

pytestmark = pytest.mark.unit
API = Path(__file__).resolve().parents[2] / "services" / "api"


def awaited_pairs() -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for source in API.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            named = {each.arg: each.value for each in node.keywords}
            success, failure = named.get("success"), named.get("failure")
            if isinstance(success, ast.Name) and isinstance(failure, ast.Name):
                pairs.add((success.id, failure.id))
            if isinstance(node.func, ast.Attribute) and node.func.attr == "sent" and len(node.args) == 3:
                given = node.args[2]
                if isinstance(given, ast.Tuple):
                    names = tuple(each.id for each in given.elts if isinstance(each, ast.Name))
                    if len(names) == 2:
                        pairs.add((names[0], names[1]))
    return {pair for pair in pairs if all(name[0].isupper() for name in pair)}  # not `follow`'s parameters


def test_every_outcome_a_route_awaits_is_recorded_by_the_consumer() -> None:
    awaited = awaited_pairs()
    assert len(awaited) >= 25, "the routes' outcome pairs were not found: has the way routes name them changed?"
    recorded = {(success.__name__, failure.__name__) for success, failure in RECORDED}
    assert awaited <= recorded, f"awaited but not recorded: {sorted(awaited - recorded)}"


def test_the_consumer_handles_both_sides_of_every_recorded_pair() -> None:
    assert set(EVENT_HANDLERS) == {event for pair in RECORDED for event in pair}
