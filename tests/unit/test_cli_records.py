"""How `show` commands print a record: nested values read as text, never as Python's repr."""

import pytest
from pydantic import BaseModel

from services.cli.talking import console, print_record

pytestmark = pytest.mark.unit


class Copy(BaseModel):
    store_name: str
    state: str
    error: str | None = None


class Image(BaseModel):
    name: str
    tags: list[str]
    copies: list[Copy]


def test_a_list_of_objects_is_one_line_an_object_with_its_set_fields() -> None:
    record = Image(
        name="tiny",
        tags=["a", "b"],
        copies=[
            Copy(store_name="st1", state="DOWNLOADED"),
            Copy(store_name="st2", state="DOWNLOAD_ERROR", error="size check"),
        ],
    )
    with console.capture() as captured:
        print_record(record, as_json=False)
    shown = captured.get()
    assert "{" not in shown
    assert "'" not in shown
    assert "a, b" in shown
    assert "store_name: st1, state: DOWNLOADED" in shown
    assert "store_name: st2, state: DOWNLOAD_ERROR, error: size check" in shown
