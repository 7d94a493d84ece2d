"""The CLI's consoles: a pipe or a file gets whole lines; a terminal width (COLUMNS) still wraps; ids stay whole."""

import io
import uuid

import pytest

from services.cli.talking import listing, make_console


def _printed(width_env: str | None, monkeypatch: pytest.MonkeyPatch, *renderables: object) -> str:
    if width_env is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", width_env)
    console = make_console()
    console.file = io.StringIO()  # not a terminal, as a pipe is not
    for renderable in renderables:
        console.print(renderable)
    output = console.file.getvalue()
    assert isinstance(output, str)
    return output


def test_a_pipe_gets_each_line_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    volume_id = uuid.uuid4()
    line = f"volume data-1 ({volume_id}) migrated from pool fast-1 to pool fast-2 (staged, 1.0 GiB); " * 2
    assert [row.rstrip() for row in _printed(None, monkeypatch, line).splitlines()] == [line.rstrip()]


def test_a_given_width_still_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    line = "word " * 40
    assert all(len(row) <= 80 for row in _printed("80", monkeypatch, line).splitlines())
    assert len(_printed("80", monkeypatch, line).splitlines()) > 1


def test_a_list_keeps_its_ids_whole_in_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [str(uuid.uuid4()) for _ in range(2)]
    table = listing("id", "name", "plugin", "state", "scope", "capacity", "used", "allocated", "volumes", "tags")
    for number, pool_id in enumerate(ids):
        table.add_row(pool_id, f"pool-{number}", "qcow2fs", "Up", "host", "252.0 GiB", "176.7 GiB", "1.5 GiB", "2", "")
    printed = _printed("80", monkeypatch, table)
    assert all(pool_id in printed for pool_id in ids)
    assert all(len(row) <= 80 for row in printed.splitlines())
