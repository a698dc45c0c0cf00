"""Documents written as Markdown and HTML: escaping, code spans, alignment and shape checks."""

from __future__ import annotations

import pytest

from islim.document import Bullets, Heading, Paragraph, Table, inline_html, markdown_table, to_html, to_markdown

BLOCKS = [
    Heading("Title <1>", level=1),
    Paragraph("Run `mf|baseline` scores < 0.5 & more."),
    Bullets(["one `a`", "two"]),
    Table(["name", "value"], [["`x|y`", "0.1"], ["z", "2"]], numeric=(False, True)),
]


def test_markdown_has_headings_bullets_and_an_aligned_table_with_escaped_pipes():
    assert to_markdown(BLOCKS) == (
        "# Title <1>\n\n"
        "Run `mf|baseline` scores < 0.5 & more.\n\n"
        "- one `a`\n- two\n\n"
        "| name | value |\n|---|---:|\n| `x\\|y` | 0.1 |\n| z | 2 |\n"
    )


def test_html_escapes_text_and_keeps_code_spans():
    assert inline_html("a < b & `c<d>` `e`") == "a &lt; b &amp; <code>c&lt;d&gt;</code> <code>e</code>"
    page = to_html(BLOCKS, "T & U")
    assert page.startswith("<!DOCTYPE html>") and "<title>T &amp; U</title>" in page
    assert "<h1>Title &lt;1&gt;</h1>" in page
    assert "<p>Run <code>mf|baseline</code> scores &lt; 0.5 &amp; more.</p>" in page
    assert "<ul>\n<li>one <code>a</code></li>\n<li>two</li>\n</ul>" in page
    assert '<tr><td><code>x|y</code></td><td class="number">0.1</td></tr>' in page
    assert "<script" not in page and "http" not in page  # standalone: nothing to fetch


def test_table_without_alignment_is_all_text_and_a_ragged_table_is_refused():
    assert markdown_table(Table(["a", "b"], [["1", "2"]])).splitlines()[1] == "|---|---|"
    with pytest.raises(ValueError, match="a table row has 1 cells, the header 2"):
        Table(["a", "b"], [["1"]])
    with pytest.raises(ValueError, match="needs as many alignment flags, got 1"):
        Table(["a", "b"], [], numeric=(True,))
