"""A timeline as a sequence diagram, services as lifelines: Mermaid text, and a self-contained SVG or HTML file.

The file is what an engineer attaches to an incident: no script, font or style sheet is fetched from anywhere, so
it opens the same in a browser offline, in a ticket's preview, or years later. The HTML holds the SVG, a table of
the lines and the Mermaid text (which renders wherever Mermaid does: GitHub, GitLab, most wikis).
"""

import html
import re
from pathlib import Path

from services.replay.timeline import NOBODY, Line, Mark, lifelines

_COLUMN = 190
_ROW = 30
_TOP = 60
_MARGIN = 30
_COLOURS = {
    Mark.FAILURE: "#c62828",
    Mark.DEAD_LETTER: "#6a1b9a",
    Mark.COMPENSATION: "#ef6c00",
    Mark.RETRY: "#f9a825",
    Mark.OPERATOR: "#1565c0",
    Mark.SAGA: "#455a64",
}
_PLAIN = "#263238"
_UNSAFE = re.compile(r"[;#:\n\r]")


def _label(line: Line) -> str:
    text = line.what
    if line.attempt is not None and line.attempt > 1:
        text += f" attempt {line.attempt}"
    if line.mark in {Mark.COMPENSATION, Mark.FAILURE, Mark.DEAD_LETTER}:
        text += f" [{line.mark.value}]"
    if line.waited is not None:
        text += f" ({line.waited.total_seconds() * 1000:.0f} ms)"
    return text


def mermaid(lines: list[Line]) -> str:
    """The timeline as a Mermaid `sequenceDiagram`."""
    names = lifelines(lines)
    alias = {name: f"S{index}" for index, name in enumerate(names)}
    out = ["sequenceDiagram"]
    out += [f"    participant {alias[name]} as {_UNSAFE.sub(' ', name)}" for name in names]
    for line in lines:
        label = _UNSAFE.sub(" ", _label(line))
        if line.message is None:
            out.append(f"    Note over {alias[line.receivers[0]]}: {line.mark.value} {label}")
            continue
        for receiver in line.receivers:
            arrow = "-x" if line.mark in {Mark.FAILURE, Mark.DEAD_LETTER} else "->>"
            if receiver == NOBODY or line.mark is Mark.REPLY:
                arrow = "--x" if receiver == NOBODY else "-->>"
            out.append(f"    {alias[line.sender]}{arrow}{alias[receiver]}: {label}")
    return "\n".join(out) + "\n"


def svg(lines: list[Line], *, title: str = "") -> str:
    """The timeline drawn as a standalone SVG document."""
    names = lifelines(lines)
    x = {name: _MARGIN + _COLUMN // 2 + index * _COLUMN for index, name in enumerate(names)}
    width = _MARGIN * 2 + _COLUMN * max(len(names), 1)
    height = _TOP + _ROW * (len(lines) + 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="11">',
        "<defs>"
        + "".join(
            f'<marker id="arrow{index}" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
            f'<path d="M0,0 L8,4 L0,8 z" fill="{colour}"/></marker>'
            for index, colour in enumerate([_PLAIN, *_COLOURS.values()])
        )
        + "</defs>",
        f'<text x="{_MARGIN}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    marker = {colour: index for index, colour in enumerate([_PLAIN, *_COLOURS.values()])}
    for name in names:
        parts.append(
            f'<rect x="{x[name] - _COLUMN // 2 + 8}" y="26" width="{_COLUMN - 16}" height="22" rx="4" '
            f'fill="#eceff1" stroke="#90a4ae"/><text x="{x[name]}" y="41" text-anchor="middle">{html.escape(name)}'
            f'</text><line x1="{x[name]}" y1="48" x2="{x[name]}" y2="{height - 10}" stroke="#b0bec5" '
            'stroke-dasharray="4 3"/>'
        )
    for row, line in enumerate(lines):
        y = _TOP + _ROW * (row + 1)
        colour = _COLOURS.get(line.mark, _PLAIN)
        label = html.escape(_label(line))
        start = x[line.sender]
        if line.message is None:
            parts.append(
                f'<rect x="{_MARGIN}" y="{y - 16}" width="{width - 2 * _MARGIN}" height="20" rx="3" '
                f'fill="#fffde7" stroke="{colour}"/><text x="{_MARGIN + 6}" y="{y - 2}" '
                f'fill="{colour}">{html.escape(line.mark.value)}: {label}</text>'
            )
            continue
        for receiver in line.receivers:
            end = x[receiver]
            dash = ' stroke-dasharray="5 3"' if line.mark is Mark.REPLY or receiver == NOBODY else ""
            if end == start:
                path = f"M{start},{y - 6} h30 v12 h-28"
                parts.append(
                    f'<path d="{path}" fill="none" stroke="{colour}"{dash} marker-end="url(#arrow{marker[colour]})"/>'
                )
            else:
                parts.append(
                    f'<line x1="{start}" y1="{y}" x2="{end - (6 if end > start else -6)}" y2="{y}" stroke="{colour}"'
                    f'{dash} marker-end="url(#arrow{marker[colour]})"/>'
                )
        anchor = min(start, *(x[receiver] for receiver in line.receivers)) + 6
        parts.append(f'<text x="{anchor}" y="{y - 4}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def page(lines: list[Line], *, title: str) -> str:
    """A self-contained HTML page: the SVG, the timeline as a table, and the Mermaid text."""
    rows = "".join(
        f"<tr><td>{html.escape(line.at.isoformat(timespec='milliseconds'))}</td><td>{html.escape(line.sender)}</td>"
        f"<td>{html.escape(', '.join(line.receivers))}</td><td>{html.escape(line.mark.value)}</td>"
        f"<td>{html.escape(_label(line))}</td></tr>"
        for line in lines
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:1.5em}}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #cfd8dc;padding:2px 6px;text-align:left}"
        "pre{background:#f5f5f5;padding:1em;overflow:auto}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{svg(lines, title=title)}"
        "<h2>Timeline</h2><table><tr><th>at</th><th>from</th><th>to</th><th>kind</th><th>what</th></tr>"
        f"{rows}</table><h2>Mermaid</h2><pre>{html.escape(mermaid(lines))}</pre></body></html>\n"
    )


def write_diagram(path: Path, lines: list[Line], *, title: str) -> None:
    """Write the diagram to `path`: SVG for `.svg`, Mermaid text for `.mmd`/`.md`, a self-contained page otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".svg":
        text = svg(lines, title=title)
    elif suffix in {".mmd", ".mermaid", ".md"}:
        text = mermaid(lines)
    else:
        text = page(lines, title=title)
    path.write_text(text, encoding="utf-8")
