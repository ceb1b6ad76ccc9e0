"""The terminal report's rich tables and texts as HTML, cell by cell, so the page shows
exactly the figures of ``lab compare`` and ``lab sweep``. Every text is escaped.
"""

from __future__ import annotations

import io
from html import escape
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.errors import MarkupError
from rich.style import Style
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    pass



_CONSOLE = Console(file=io.StringIO(), color_system="truecolor", width=400)
_COLOR_CLASSES = {"green": "good", "red": "bad", "yellow": "warn", "cyan": "info"}


def _style_classes(style: Style | None) -> list[str]:
    if style is None:
        return []
    classes = []
    if style.color is not None and style.color.name in _COLOR_CLASSES:
        classes.append(_COLOR_CLASSES[style.color.name])
    if style.bold:
        classes.append("b")
    if style.dim:
        classes.append("dim")
    if style.italic:
        classes.append("i")
    return classes


def rich_text_html(cell: RenderableType | None) -> str:
    """A rich cell (``Text``, or a string with rich markup) as escaped HTML: line breaks
    become ``<br>``, colours and weights become classes (green ``good``, red ``bad``,
    yellow ``warn``, dim ``dim``, bold ``b``)."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        try:
            text = Text.from_markup(cell)
        except MarkupError:
            text = Text(cell)
    elif isinstance(cell, Text):
        text = cell
    else:
        return escape(str(cell))
    out = []
    for segment in text.render(_CONSOLE, end=""):
        if not segment.text:
            continue
        body = escape(segment.text).replace("\n", "<br>")
        classes = _style_classes(segment.style)
        out.append(f'<span class="{" ".join(classes)}">{body}</span>' if classes else body)
    return "".join(out)


def rich_table_html(table: Table, css_class: str = "") -> str:
    """A rich ``Table`` as an HTML table: its title as the caption, its header, its rows
    (a bold row stays bold), right-justified columns as numbers, and its caption as a
    note under the table."""
    columns = table.columns
    cells = [list(column.cells) for column in columns]
    numeric = [column.justify == "right" for column in columns]
    head = "".join(f'<th class="{"num" if num else ""}">{rich_text_html(column.header)}</th>'
                   for column, num in zip(columns, numeric, strict=True))
    body = []
    for r in range(table.row_count):
        row_style = table.rows[r].style
        bold = row_style is not None and "bold" in str(row_style)
        tds = "".join(
            f'<td class="{"num" if numeric[c] else ""}">{rich_text_html(cells[c][r])}</td>'
            for c in range(len(columns)))
        body.append(f'<tr class="{"b" if bold else ""}">{tds}</tr>')
    caption = f"<caption>{rich_text_html(table.title)}</caption>" if table.title else ""
    note = ""
    if table.caption:
        note = f'<p class="note">{rich_text_html(table.caption)}</p>'
    return (f'<div class="table-wrap"><table class="{escape(css_class)}">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}</div>")


