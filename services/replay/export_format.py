"""The replay export: a self-contained, versioned JSON Lines file, checked line by line when read back.

Line 1 is the header (format name and version, when and by which code version it was made, the selection, the
saga definitions registered then); then one line per message, saga and plugin configuration; the last line is the
end (how many lines came before). Every line carries `sha256`, the hash of the previous line's hash and this line's
own content, so a line edited, dropped, added or moved breaks the chain at that line, and a file cut short has no
end line. Reading refuses, naming the line: a broken chain, a format newer than this code reads, a message whose
type this code does not know or whose payload no longer matches its schema. Reading is all or nothing: a caller
gets every record or an error, never a part.

Payloads, saga records and plugin configurations are masked before they are written (`schemas.redact`): an export
travels in bug reports and CI, and never holds a secret.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from schemas import InvalidArgument, MessageRegistry, StrataError, registry
from services.replay.reading import Recorded
from services.replay.saga_records import saga_from_json
from services.replay.timeline import SagaRecord

FORMAT = "strata.replay.export"
FORMAT_VERSION = 1
_GENESIS = "0" * 64
JsonObject = dict[str, Any]  # a line of the file: JSON values of every kind


class BadExport(InvalidArgument):
    """An export that cannot be trusted or read; the message names the line."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line}: {why}", field=f"line {line}")
        self.line = line


@dataclass
class Export:
    """What an export holds, read back and checked."""

    header: JsonObject
    messages: list[Recorded] = field(default_factory=list)
    sagas: list[SagaRecord] = field(default_factory=list)
    plugin_configs: list[JsonObject] = field(default_factory=list)

    @property
    def code_version(self) -> str:
        """The code version that made the export."""
        return str(self.header.get("code_version", "unknown"))


def _canonical(record: JsonObject) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chained(previous: str, record: JsonObject) -> str:
    return hashlib.sha256((previous + _canonical(record)).encode()).hexdigest()


def render_lines(header: JsonObject, records: Iterable[JsonObject]) -> Iterator[str]:
    """The file's lines (each ending in a newline): header, `records`, end, hash-chained."""
    previous = _GENESIS
    count = 0
    for record in (
        {"kind": "header", "format": FORMAT, "format_version": FORMAT_VERSION, **header},
        *records,
    ):
        previous = _chained(previous, record)
        count += 1
        yield _canonical({**record, "sha256": previous}) + "\n"
    end = {"kind": "end", "lines": count}
    yield _canonical({**end, "sha256": _chained(previous, end)}) + "\n"


def write_export(path: Path, header: JsonObject, records: Iterable[JsonObject]) -> int:
    """Write an export to `path` (through a temporary file renamed at the end); return the number of lines."""
    partial = path.with_name(path.name + ".partial")
    lines = 0
    with partial.open("w", encoding="utf-8") as out:
        for line in render_lines(header, records):
            out.write(line)
            lines += 1
    partial.replace(path)
    return lines


def read_export(path: Path, messages: MessageRegistry = registry) -> Export:
    """Read and check an export completely; raise `BadExport` naming the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadExport(1, "the file is not UTF-8 text (not a replay export)") from None
    except OSError as error:
        raise InvalidArgument(f"cannot read {path}: {error.strerror}", field="file") from None
    return parse_export(text.splitlines(), messages)


def parse_export(lines: list[str], messages: MessageRegistry = registry) -> Export:
    """Check the lines of an export (hash chain, format version, every message decodes) and return its content."""
    if not lines:
        raise BadExport(1, "the file is empty (not a replay export)")
    previous = _GENESIS
    export: Export | None = None
    for number, text in enumerate(lines, start=1):
        record = _record(number, text)
        claimed = record.pop("sha256", None)
        if number == 1:  # what the file is, and whether this code reads its version, before how it chains
            export = Export(_header(record))
        expected = _chained(previous, record)
        if claimed != expected:
            raise BadExport(number, "the line was changed, added, removed or moved (its sha256 does not chain)")
        previous = expected
        kind = record.get("kind")
        if number == 1:
            continue
        if export is None or kind == "header":
            raise BadExport(number, "a second header")
        if kind == "end":
            if record.get("lines") != number - 1 or number != len(lines):
                raise BadExport(number, "the end line does not close the file")
            return export
        _take(export, number, kind, record, messages)
    raise BadExport(len(lines), "the file ends without its end line (truncated)")


def _record(number: int, text: str) -> JsonObject:
    try:
        record = json.loads(text)
    except ValueError:
        raise BadExport(number, "not a JSON object (truncated or edited)") from None
    if not isinstance(record, dict):
        raise BadExport(number, "not a JSON object")
    return record


def _header(record: JsonObject) -> JsonObject:
    if record.get("kind") != "header" or record.get("format") != FORMAT:
        raise BadExport(1, f"not a replay export (its first line is not a {FORMAT} header)")
    version = record.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BadExport(1, "the header has no format_version")
    if version > FORMAT_VERSION:
        raise BadExport(
            1, f"format version {version} is newer than this strata reads ({FORMAT_VERSION}); upgrade strata"
        )
    return record


def _take(export: Export, number: int, kind: object, record: JsonObject, messages: MessageRegistry) -> None:
    try:
        if kind == "message":
            export.messages.append(_message(record, messages))
        elif kind == "saga":
            export.sagas.append(saga_from_json(record["saga"]))
        elif kind == "plugin_config":
            export.plugin_configs.append(record)
        else:
            raise BadExport(number, f"unknown record kind {kind!r}")
    except StrataError as error:
        if isinstance(error, BadExport):
            raise
        raise BadExport(number, error.message) from None
    except (KeyError, TypeError, ValueError) as error:
        raise BadExport(number, f"a malformed {kind} record ({type(error).__name__}: {error})") from None


def _message(record: JsonObject, messages: MessageRegistry) -> Recorded:
    message = messages.decode(record["type"], int(record["version"]), json.dumps(record["payload"]))
    row = (
        UUID(record["message_id"]),
        record["type"],
        int(record["version"]),
        UUID(record["correlation_id"]),
        UUID(record["causation_id"]) if record.get("causation_id") else None,
        UUID(record["saga_id"]) if record.get("saga_id") else None,
        record.get("step"),
        str(record["producer"]),
        record.get("fencing_token"),
        datetime.fromisoformat(record["occurred_at"]),
        datetime.fromisoformat(record["recorded_at"]),
        json.dumps(record.get("headers") or {}),
        json.dumps(record["payload"]),
    )
    return Recorded(row, message)
