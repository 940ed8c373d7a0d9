"""Tables as Markdown, HTML or fixed-width text: the one renderer of the report, the presets
table and the expected-bounds check. Cells are strings; rows are lists of cells."""

from __future__ import annotations

import html

NONE = "_none_"


def markdown(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; `_none_` for a table without columns. Pipes and newlines escaped."""
    if not header:
        return NONE + "\n"
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


def to_html(header: list[str], rows: list[list], table_id: str | None = None) -> str:
    """An HTML table (numbers right-aligned by the page's td.num rule); a note for no columns."""
    if not header:
        return "<p><em>none</em></p>"
    attr = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if _numeric(str(c)) else ''}>{html.escape(str(c))}</td>" for c in row)
        + "</tr>" for row in rows)
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text(header: list[str], rows: list[list]) -> str:
    """Columns padded to their widest cell, for a terminal (and a Markdown reader)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(header)]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)]) + "\n"
