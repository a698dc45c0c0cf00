"""Small documents written twice: as Markdown (for the repository and the terminal) and as a
standalone HTML page (for the Snakemake report, which shows HTML results formatted).

A document is a list of blocks: :class:`Heading`, :class:`Paragraph`, :class:`Bullets` and
:class:`Table`. Text is plain except for ``code`` spans between backticks, which both renderings
keep as code; everything else is escaped for HTML, so numbers and names are shown exactly as given.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: A ``code`` span of the inline text.
CODE_SPAN = re.compile(r"`([^`]+)`")

#: The HTML page's style: readable width, tables with rules and right-aligned numbers.
PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px; line-height: 1.45;
       color: #1f2328; margin: 1.5em; }
h1 { font-size: 1.5em; margin-top: 0; } h2 { font-size: 1.2em; margin-top: 1.6em; }
p, ul { max-width: 60em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; }
th, td { border-bottom: 1px solid #d0d7de; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; } td { overflow-wrap: break-word; }
td.number { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.92em; background: #f6f8fa; padding: 0 0.2em; }
"""


@dataclass(frozen=True)
class Heading:
    """A section title; ``level`` 1 is the document's title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of inline text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list, one inline text per item."""

    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``numeric[j]`` right-aligns column ``j``."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[bool] = ()

    def __post_init__(self):
        numeric = tuple(self.numeric) or (False,) * len(self.header)
        if len(numeric) != len(self.header):
            raise ValueError(f"a table of {len(self.header)} columns needs as many alignment flags, got {len(numeric)}")
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"a table row has {len(row)} cells, the header {len(self.header)}: {list(row)}")
        object.__setattr__(self, "numeric", numeric)


Block = Heading | Paragraph | Bullets | Table


def markdown_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (pipes escaped, on one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table (numeric columns right-aligned), ending in a newline."""
    lines = ["| " + " | ".join(map(markdown_cell, table.header)) + " |"]
    lines.append("|" + "|".join("---:" if numeric else "---" for numeric in table.numeric) + "|")
    lines += ["| " + " | ".join(map(markdown_cell, row)) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def to_markdown(blocks: Sequence[Block]) -> str:
    """The document as Markdown, blocks separated by blank lines."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text + "\n")
        elif isinstance(block, Paragraph):
            parts.append(block.text + "\n")
        elif isinstance(block, Bullets):
            parts.append("".join(f"- {item}\n" for item in block.items))
        else:
            parts.append(markdown_table(block))
    return "\n".join(parts)


def inline_html(text: str) -> str:
    """``text`` escaped for HTML, its backtick spans as ``<code>``."""
    pieces = CODE_SPAN.split(str(text))
    return "".join(f"<code>{html.escape(piece)}</code>" if i % 2 else html.escape(piece) for i, piece in enumerate(pieces))


def html_table(table: Table) -> str:
    """An HTML ``<table>``; numeric columns get ``class="number"`` (right-aligned by :data:`PAGE_STYLE`)."""
    head = "".join(f"<th>{inline_html(cell)}</th>" for cell in table.header)
    rows = [
        "<tr>"
        + "".join(f'<td class="number">{inline_html(c)}</td>' if n else f"<td>{inline_html(c)}</td>" for c, n in zip(row, table.numeric))
        + "</tr>"
        for row in table.rows
    ]
    return "<table>\n<thead><tr>" + head + "</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """The document as a standalone HTML page (UTF-8, inline style, no scripts or external files)."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>\n" + "\n".join(f"<li>{inline_html(item)}</li>" for item in block.items) + "\n</ul>")
        else:
            body.append(html_table(block))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
