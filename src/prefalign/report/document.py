"""The report as a list of sections of typed blocks, and its two renderings.

Every section (summary, health, evaluation, data, ...) is built once as blocks; `markdown`
and `html` walk the same list, so both files always hold the same sections in the same order
and no section is spliced into already-rendered text. Figures and SVG histograms exist only
in the HTML; the Markdown says where to find them.
"""

from __future__ import annotations

import html as escape
from dataclasses import dataclass, field

from prefalign import tables


@dataclass
class Text:
    text: str
    note: bool = False  # small print (methods, caveats)
    html_id: str | None = None


@dataclass
class Bullets:
    lines: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list]
    html_id: str | None = None


@dataclass
class Heading:
    text: str


@dataclass
class Figure:
    png_base64: str | None
    alt: str


@dataclass
class Svg:
    """Inline SVG markup (HTML only)."""

    markup: str


@dataclass
class Details:
    """A collapsible table in HTML (open), a sub-heading and table in Markdown."""

    summary: str
    table: Table


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#1d232b;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #d8dde3;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #d8dde3;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.5em 0}.summary li{margin:.2em 0}code{background:#f2f4f7;padding:0 .2em}
details{margin:.4em 0}nav a{margin-right:.8em}.note{color:#5a6270;font-size:.9em}
"""


def markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}\n"]
    for section in sections:
        out.append(f"## {section.title}\n")
        figures = False
        for block in section.blocks:
            if isinstance(block, Text):
                out.append(f"{block.text}\n")
            elif isinstance(block, Bullets):
                out.append("\n".join(f"- {line}" for line in block.lines) + "\n")
            elif isinstance(block, Table):
                out.append(tables.markdown(block.header, block.rows))
            elif isinstance(block, Heading):
                out.append(f"### {block.text}\n")
            elif isinstance(block, Details):
                out += [f"### {block.summary}\n", tables.markdown(block.table.header, block.table.rows)]
            elif isinstance(block, (Figure, Svg)):
                figures = figures or isinstance(block, Svg) or block.png_base64 is not None
        if figures:
            out.append("_Figures of this section are in report.html._\n")
    return "\n".join(out)


def _html_block(block) -> str:
    if isinstance(block, Text):
        attrs = (" class=note" if block.note else "") + (f" id={block.html_id}" if block.html_id else "")
        return f"<p{attrs}>{escape.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul class=summary>" + "".join(f"<li>{escape.escape(line)}</li>" for line in block.lines) + "</ul>"
    if isinstance(block, Table):
        return tables.to_html(block.header, block.rows, block.html_id)
    if isinstance(block, Heading):
        return f"<h3>{escape.escape(block.text)}</h3>"
    if isinstance(block, Details):
        return (f"<details open><summary>{escape.escape(block.summary)}</summary>"
                + tables.to_html(block.table.header, block.table.rows, block.table.html_id) + "</details>")
    if isinstance(block, Figure):
        if block.png_base64 is None:
            return ""
        return f"<img alt='{escape.escape(block.alt)}' src='data:image/png;base64,{block.png_base64}'>"
    if isinstance(block, Svg):
        return block.markup
    raise TypeError(f"not a report block: {block!r}")


def html(title: str, sections: list[Section]) -> str:
    title = escape.escape(title)
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
             # The page loads nothing: a tight policy makes any accidental outside reference fail loudly.
             "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{title}</h1>",
             "<nav>" + "".join(f"<a href='#{s.id}'>{escape.escape(s.title)}</a>" for s in sections) + "</nav>"]
    for section in sections:
        parts.append(f"<h2 id={section.id}>{escape.escape(section.title)}</h2>")
        parts += [_html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"
