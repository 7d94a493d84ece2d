"""The replay tool's pure parts: the diff, the selection's SQL, the export's line checks; and the fault points it
arms more than once."""

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from plugins.sdk import faults
from schemas import InvalidArgument
from services.replay.data_plane import path_twins
from services.replay.diff import Comparable, Verdict, compare, substitute
from services.replay.export_format import BadExport, parse_export, render_lines
from services.replay.selection import Cursor, Selection, Status, select_sql


def test_the_diff_pairs_by_id_then_by_type_and_step_and_names_changed_fields() -> None:
    same_id = uuid4()
    recorded = [
        Comparable(same_id, "vm.stop", 3, {"vm_id": "a", "force": False}),
        Comparable(uuid4(), "saga.ended", 9, {"status": "COMPLETED"}),
        Comparable(uuid4(), "snapshot.delete", 8, {"snapshot_id": "s"}),
    ]
    replayed = [
        Comparable(same_id, "vm.stop", 3, {"vm_id": "a", "force": True}),
        Comparable(uuid4(), "saga.ended", 9, {"status": "COMPLETED"}),
        Comparable(uuid4(), "vm.start", 10, {}),
    ]
    diff = compare(recorded, replayed)
    verdicts = {(entry.type, entry.verdict) for entry in diff.entries}
    assert verdicts == {
        ("vm.stop", Verdict.CHANGED),
        ("saga.ended", Verdict.MATCHING),
        ("snapshot.delete", Verdict.MISSING),
        ("vm.start", Verdict.EXTRA),
    }
    changed = next(entry for entry in diff.entries if entry.verdict is Verdict.CHANGED)
    assert [(change.path, change.recorded, change.replayed) for change in changed.changes] == [("force", False, True)]
    assert diff.first_divergent_step == 3
    assert not diff.same


def test_generated_values_are_mapped_before_comparing() -> None:
    assert substitute({"ids": ["new", "kept"], "name": "safety-new"}, {"new": "old"}) == {
        "ids": ["old", "kept"],
        "name": "safety-new",
    }


def test_a_live_answers_temporary_paths_map_to_the_recorded_ones_that_end_the_same() -> None:
    root = "/tmp/strata-sandbox-x1"
    live = {"locator": f"{root}/pool-a/volumes/v1/active.qcow2", "other": f"{root}/pool-a/volumes/v2/active.qcow2"}
    recorded = {"locator": "/srv/pool/volumes/v1/active.qcow2", "other": "/srv/pool/volumes/v9/active.qcow2"}
    assert path_twins(live, recorded, root) == {live["locator"]: recorded["locator"]}
    assert path_twins([live], [recorded], "/elsewhere") == {}


def test_selection_sql_combines_filters_and_pages_by_keyset() -> None:
    volume = uuid4()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    after = Cursor(since, uuid4())
    sql, arguments = select_sql(
        Selection(entities=(("volume", volume),), statuses=(Status.COMPENSATED,), services=("snapshot",), since=since),
        after=after,
        limit=50,
    )
    assert "payload::text LIKE ANY" in sql
    assert "split_part(j.producer, '@', 1)" in sql
    assert "(j.occurred_at, j.message_id) >" in sql
    assert "OFFSET" not in sql
    assert [f"%{volume}%"] in arguments
    assert arguments[-1] == 50
    assert Cursor.parse(str(after)) == after


@pytest.mark.parametrize(
    ("selection", "field"),
    [
        (lambda: Selection(entities=(("disk", uuid4()),)), "disk"),
        (lambda: Selection(since=datetime(2026, 1, 1)), "since"),  # the naive time is the point
        (lambda: Selection(types=(" ",)), "types"),
    ],
)
def test_a_bad_selection_is_refused_naming_the_field(selection: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        selection()  # type: ignore[operator]
    assert refused.value.field == field


def test_an_export_is_checked_line_by_line() -> None:
    lines = "".join(render_lines({"code_version": "test"}, [{"kind": "plugin_config", "plugin": "p"}])).splitlines()
    assert parse_export(lines).plugin_configs[0]["plugin"] == "p"
    moved = [lines[0], lines[2], lines[1]]
    with pytest.raises(BadExport, match="line 2: the line was changed"):
        parse_export(moved)
    with pytest.raises(BadExport, match="line 2: the file ends without its end line"):
        parse_export(lines[:2])
    edited = json.loads(lines[1])
    edited["plugin"] = "q"
    with pytest.raises(BadExport, match="line 2"):
        parse_export([lines[0], json.dumps(edited), lines[2]])
    with pytest.raises(BadExport, match="line 1: not a replay export"):
        parse_export(['{"kind": "something else"}'])


async def test_a_fault_point_armed_several_times_crashes_that_many_times_in_a_row() -> None:
    faults.arm("test.replay.point", times=3)
    crashes = 0
    for _ in range(5):
        try:
            await faults.point("test.replay.point")
        except faults.InjectedCrash:
            crashes += 1
    assert crashes == 3
    faults.arm("test.replay.point", times=2)
    faults.disarm("test.replay.point")
    await faults.point("test.replay.point")  # disarmed: passes
