"""Tables of plain text cells, printed as rich prints them by a copy of rich's layout that
needs none of rich's modules, or by rich where the copy does not reach.

`heddle catalog list` prints ~90 rows: rich measures and renders every cell through its
console (Padding, Text, Segment objects), ~30 ms, and importing rich.console and rich.table
costs ~22 ms more: together more than typer itself takes to start. `draw` lays out the same
table (rich's default box, padding and column-width rules, words wrapped as rich wraps them)
in ~2 ms, with rich's default styles (bold headers, an italic title) for a terminal and none
for a pipe, a file or a log; `print_tables` decides width and styles as rich's console would.
`draw` returns None for anything it does not copy (non-ASCII text, a column squeezed under 3
cells, a title wider than the table), and the caller hands that table to rich.
tests/cli/test_tables.py holds `draw` equal, character for character and escape code for
escape code, to rich on tables drawn by hypothesis, and `print_tables` to rich's console in
real terminals and forced ones.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
from dataclasses import dataclass, field
from itertools import pairwise
from typing import IO, TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["Column", "PlainTable", "draw", "print_tables", "to_rich"]

RICH_CHECKED = "15.0.0"
"""The rich release whose layout rules `draw` copies (tests/cli/test_tables.py pins it)."""

_WORD = re.compile(r"\s*\S+\s*")
"""rich's word for wrapping (rich._wrap.re_word): a run of non-space with the spaces around it."""
_PAD = 1
"""Cells to each side of a cell's text (rich's default Table padding (0, 1))."""
_MIN_WIDTH = 3
"""Narrowest column drawn here: padding plus one cell (rich measures narrower ones its own way)."""
_HEADER_SGR = "1"
"""The escape code of rich's default `table.header` style (bold): the same in every colour system."""
_TITLE_SGR = "3"
"""The escape code of rich's default `table.title` style (italic)."""


@dataclass(slots=True, frozen=True)
class Column:
    """A column's header, how its cells line up, and whether they may wrap onto more lines."""

    header: str
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False


@dataclass(slots=True)
class PlainTable:
    """A title, columns and rows of plain text: rich gets each as a Text, never parsed for
    markup or emoji codes (`[bold]` prints as written)."""

    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)


def _ratio_reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]) -> list[int]:
    """rich._ratio.ratio_reduce: take `total` from `values` in proportion to `ratios`."""
    ratios = [ratio if maximum else 0 for ratio, maximum in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining, result = total, []
    for ratio, maximum, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            distributed = min(maximum, round(ratio * remaining / total_ratio))
            result.append(value - distributed)
            remaining -= distributed
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _collapse(widths: list[int], wrapable: list[bool], max_width: int) -> list[int]:
    """rich.table.Table._collapse_widths: narrow the widest wrapable columns first."""
    total = sum(widths)
    excess = total - max_width
    if any(wrapable):
        while total and excess > 0:
            widest = max(w for w, wrap in zip(widths, wrapable, strict=True) if wrap)
            second = max(w if wrap and w != widest else 0 for w, wrap in zip(widths, wrapable, strict=True))
            ratios = [1 if (w == widest and wrap) else 0 for w, wrap in zip(widths, wrapable, strict=True)]
            if not any(ratios) or not widest - second:
                break
            widths = _ratio_reduce(excess, ratios, [min(excess, widest - second)] * len(widths), widths)
            total = sum(widths)
            excess = total - max_width
    return widths


def _widths(table: PlainTable, max_width: int) -> list[int]:
    """Each column's width with its padding (rich's Table._calculate_column_widths, expand off)."""
    widths = []
    for i, col in enumerate(table.columns):
        longest = max([len(col.header), *(len(row[i]) for row in table.rows)])
        widths.append(min(longest + 2 * _PAD, max_width) or 1)
    if sum(widths) > max_width:
        widths = _collapse(widths, [not c.no_wrap for c in table.columns], max_width)
        if sum(widths) > max_width:  # rich's last resort: all columns narrowed evenly
            widths = _ratio_reduce(sum(widths) - max_width, [1] * len(widths), widths, widths)
    return widths


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrap(text: str, width: int, justify: str, no_wrap: bool) -> list[str]:
    """`text` as lines exactly `width` cells wide, as rich.text.Text.wrap lays out a cell whose
    column overflows with an ellipsis (rich's default)."""
    if no_wrap:
        pieces = [text]
    else:
        breaks, offset = [], 0  # rich._wrap.divide_line with fold=False
        for match in _WORD.finditer(text):
            start, word = match.start(), match.group()
            length = len(word.rstrip())
            if width - offset >= length:
                offset += len(word)
            elif length > width:
                if start:
                    breaks.append(start)
                offset = len(word)
            elif offset and start:
                breaks.append(start)
                offset = len(word)
        bounds = [0, *breaks, len(text)]
        pieces = [text[a:b] for a, b in pairwise(bounds)]
        # Text.rstrip_end: trailing spaces beyond the width go
        pieces = [p[: max(width, len(p.rstrip()))] if len(p) > width else p for p in pieces]
    if justify == "right":
        return [_ellipsis(p.rstrip(), width).rjust(width) for p in pieces]
    return [_ellipsis(p, width).ljust(width) for p in pieces]


def _styled(text: str, sgr: str) -> str:
    """`text` as rich's Style.render writes it: in the style's codes then a reset, except an
    empty text (or no style), which is written as it is."""
    return f"\x1b[{sgr}m{text}\x1b[0m" if sgr and text else text


def draw(table: PlainTable, width: int, *, styled: bool = False) -> list[str] | None:
    """The lines rich prints for `table` on a console `width` cells wide, with rich's default
    styles (bold headers, an italic title) when `styled` (a console that writes escape codes,
    in any of its colour systems: these styles use no colour), or None where rich's layout is
    not copied here (see the module docstring)."""
    texts = [table.title, *(c.header for c in table.columns), *(cell for row in table.rows for cell in row)]
    if not all(t.isascii() and t.isprintable() for t in texts):
        return None
    n = len(table.columns)
    if n == 0 or any(len(row) != n for row in table.rows):
        return None
    widths = _widths(table, width - (n + 1))  # the borders: one per column plus the right edge
    if min(widths) < _MIN_WIDTH:
        return None
    table_width = sum(widths) + n + 1
    lines = []
    if table.title:
        title = table.title.rstrip()  # rich centres the title with its trailing spaces cut
        if len(title) > table_width:
            return None  # rich wraps it
        left = (table_width - len(title)) // 2
        lines.append(_styled((" " * left + title).ljust(table_width), _TITLE_SGR if styled else ""))
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    header_sgr = _HEADER_SGR if styled else ""
    lines += _row([c.header for c in table.columns], table.columns, widths, "┃", bottom=True, sgr=header_sgr)
    lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    for row in table.rows:
        lines += _row(list(row), table.columns, widths, "│", bottom=False)
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    return lines


def _row(
    cells: list[str], columns: tuple[Column, ...], widths: list[int], edge: str, *, bottom: bool, sgr: str = "",
) -> list[str]:
    """One table row: each cell wrapped in its column, the shorter cells padded with blank
    lines below (a header row: above, as rich aligns headers to the bottom). `sgr` styles each
    piece of a cell (its padding, its text, a blank line) as rich writes them: separately."""
    wrapped = [
        _wrap(cell, w - 2 * _PAD, col.justify, col.no_wrap)
        for cell, col, w in zip(cells, columns, widths, strict=True)
    ]
    height = max(len(lines) for lines in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, w in zip(wrapped, widths, strict=True):
            k = i - (height - len(lines)) if bottom else i
            if 0 <= k < len(lines):
                parts.append(_styled(" ", sgr) + _styled(lines[k], sgr) + _styled(" ", sgr))
            else:
                parts.append(_styled(" " * w, sgr))
        out.append(edge + edge.join(parts) + edge)
    return out


def to_rich(table: PlainTable) -> Table:
    """The same table as a rich Table (for a terminal: bold headers, an italic title). Cells
    and headers go in as Text: plain text, not parsed for markup or emoji codes."""
    from rich.table import Table
    from rich.text import Text

    out = Table(title=Text(table.title, style="table.title"))  # a str title is read as markup
    for col in table.columns:
        out.add_column(Text(col.header), justify=col.justify, no_wrap=col.no_wrap)
    for row in table.rows:
        out.add_row(*(Text(cell) for cell in row))
    return out


def _terminal_width() -> int:
    """The width rich's Console takes for a terminal when heddle gives it none (Console.size on
    POSIX): $COLUMNS when it is all digits, else the first of stdin, stdout and stderr that
    reports a size, else 80."""
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    return width or 80


def _target(stream: IO[str]) -> tuple[int, bool] | None:
    """(width, styled): how rich's console for `stream` (heddle.cli.common.console) prints a
    table, decided as rich's Console decides (is_terminal, _detect_color_system, size), or None
    for a console whose choices are not copied here: Windows, IPython, IDLE, a dumb terminal,
    an encoding other than UTF-8 (rich swaps in an ASCII box)."""
    from heddle.cli.common import output_width

    if sys.platform == "win32" or hasattr(builtins, "get_ipython"):
        return None
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return None
    if not (getattr(stream, "encoding", None) or "utf-8").lower().startswith("utf"):
        return None
    env = os.environ
    compatible, force_color = env.get("TTY_COMPATIBLE", ""), env.get("FORCE_COLOR")
    if compatible in ("0", "1"):
        terminal = compatible == "1"
    elif force_color is not None:
        terminal = force_color != ""
    else:
        terminal = stream.isatty()
    if terminal and env.get("TERM", "").lower() in ("dumb", "unknown"):
        return None  # rich: no colour system and an 80-column size, unless LINES is set too
    width = output_width(stream)
    return (_terminal_width() if width is None else width), terminal


def print_tables(tables: list[PlainTable]) -> None:
    """Print `tables` to stdout one after another, as rich's console prints them."""
    target = _target(sys.stdout)
    if target is not None:
        width, styled = target
        drawn = [draw(t, width, styled=styled) for t in tables]
        if all(lines is not None for lines in drawn):
            sys.stdout.write("".join(line + "\n" for lines in drawn if lines for line in lines))
            return
    from heddle.cli.common import console

    out = console()
    for t in tables:
        out.print(to_rich(t))
