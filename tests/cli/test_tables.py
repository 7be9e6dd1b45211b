"""heddle.cli.tables draws a table exactly as rich does, wherever it draws one itself."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from heddle.cli import catalog
from heddle.cli.tables import Column, PlainTable, draw, to_rich


def _rich(table: PlainTable, width: int) -> str:
    out = Console(file=io.StringIO(), width=width)
    out.print(to_rich(table))
    return out.file.getvalue()


def _drawn(table: PlainTable, width: int) -> str | None:
    lines = draw(table, width)
    return None if lines is None else "".join(line + "\n" for line in lines)


_words = st.text(alphabet="abcXYZ019(),./-", min_size=1, max_size=14)
_cell = st.lists(_words, max_size=5).map(" ".join) | st.builds(
    lambda pre, words, post: " " * pre + "  ".join(words) + " " * post,
    st.integers(0, 2), st.lists(_words, max_size=3), st.integers(0, 2),
)
"""Cell text: words of varied length (some longer than a narrow column), single or double spaces,
leading and trailing spaces, empty cells."""


@st.composite
def _tables(draw_: st.DrawFn) -> PlainTable:
    columns = draw_(st.lists(st.builds(Column, _cell, st.sampled_from(["left", "right"]), st.booleans()),
                             min_size=1, max_size=6))
    rows = draw_(st.lists(st.tuples(*(_cell for _ in columns)), max_size=6))
    title = draw_(st.sampled_from(["", "Devices", "AI models", "  Cloud offers  ", "[bold]x[/] :smile:",
                                        "a much longer title " * 4]))
    return PlainTable(title, tuple(columns), rows)


@settings(max_examples=300, deadline=None)
@given(table=_tables(), width=st.integers(20, 160))
def test_a_table_drawn_here_is_the_one_rich_draws(table, width):
    drawn = _drawn(table, width)
    if drawn is not None:
        assert drawn == _rich(table, width)


@pytest.mark.parametrize("build", [catalog._devices_table, catalog._models_table, catalog._offers_table])
def test_the_catalog_tables_are_drawn_here_at_any_width_and_as_rich_draws_them(build):
    table = build()
    for width in (80, 100, 120, 150, 200, 250):
        drawn = _drawn(table, width)
        assert drawn is not None, width  # pipes take the fast path at every width a pipe gets
        assert drawn == _rich(table, width), width


def test_what_only_rich_draws_goes_to_rich():
    assert draw(PlainTable("", (Column("id"),), [("€5",)]), 80) is None  # not ASCII
    assert draw(PlainTable("", (Column("id", no_wrap=True),) * 3, [("x" * 40,) * 3]), 12) is None  # squeezed


def _list(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(COLUMNS="120", **env_extra)
    done = subprocess.run([sys.executable, "-m", "heddle.cli.main", "catalog", "list", "--kind", "offer"],
                          capture_output=True, text=True, env=env, check=True, timeout=60)
    return done.stdout


def test_a_pipe_gets_plain_text_and_a_forced_terminal_gets_rich_styles():
    plain, styled = _list({}), _list({"FORCE_COLOR": "1"})
    assert "\x1b[" not in plain and "┃ id " in plain
    assert "\x1b[1m" in styled and "\x1b[3m" in styled  # bold headers, italic title: rich drew it
    assert plain == _rich(catalog._offers_table(), 120)


def test_the_copied_layout_was_checked_against_the_installed_rich():
    # draw copies rich's layout rules (divide_line, ratio_reduce, _collapse_widths, word
    # wrapping); a new rich may change them in ways the drawn tables above do not reach.
    # On a new rich: re-read rich/table.py, _wrap.py and text.wrap, run this file, then
    # update RICH_CHECKED.
    from importlib.metadata import version

    from heddle.cli.tables import RICH_CHECKED

    assert version("rich") == RICH_CHECKED

