"""heddle.cli.tables draws a table exactly as rich does, wherever it draws one itself."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from heddle.cli import catalog
from heddle.cli.tables import Column, PlainTable, draw, to_rich


def _rich(table: PlainTable, width: int, color_system: str | None = None, no_color: bool = False) -> str:
    out = Console(file=io.StringIO(), width=width, force_terminal=color_system is not None,
                  color_system=color_system, no_color=no_color)
    out.print(to_rich(table))
    return out.file.getvalue()


def _drawn(table: PlainTable, width: int, styled: bool = False) -> str | None:
    lines = draw(table, width, styled=styled)
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
@given(table=_tables(), width=st.integers(1, 160), color_system=st.sampled_from([None, "standard", "256", "truecolor"]),
       no_color=st.booleans())
def test_a_table_drawn_here_is_the_one_rich_draws(table, width, color_system, no_color):
    # color_system None: a pipe or file (no escape codes); else a terminal, forced, in each of
    # rich's colour systems, with or without NO_COLOR (which keeps bold and italic)
    drawn = _drawn(table, width, styled=color_system is not None)
    if drawn is not None:
        assert drawn == _rich(table, width, color_system, no_color)


@pytest.mark.parametrize("build", [catalog._devices_table, catalog._models_table, catalog._offers_table])
def test_the_catalog_tables_are_drawn_here_at_any_width_and_as_rich_draws_them(build):
    table = build()
    for width in (60, 80, 100, 120, 150, 200, 250):
        for color_system in (None, "truecolor"):
            drawn = _drawn(table, width, styled=color_system is not None)
            assert drawn is not None, width  # the fast path at every width a pipe or a terminal has
            assert drawn == _rich(table, width, color_system), width


def test_what_only_rich_draws_goes_to_rich():
    assert draw(PlainTable("", (Column("id"),), [("€5",)]), 80) is None  # not ASCII
    assert draw(PlainTable("", (Column("id", no_wrap=True),) * 3, [("x" * 40,) * 3]), 12) is None  # squeezed


_BOTH = """
import sys
sys.argv = ["heddle", "catalog", "list", "--kind", "offer"]
from heddle.cli.main import main
from heddle.cli.catalog import _offers_table
from heddle.cli.common import console
from heddle.cli.tables import to_rich
try:
    main()
except SystemExit:
    pass
sys.stdout.write(f"===== rich.console imported: {'rich.console' in sys.modules}\\n")
sys.stdout.flush()
console().print(to_rich(_offers_table()))
"""
"""`heddle catalog list --kind offer` as the script runs it, then the same table printed by
rich's console for heddle (heddle.cli.common.console), in one process: same stream, same
environment."""

_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "LINES", "TERM", "COLORTERM")


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}, **extra}


def _both_piped(extra: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", _BOTH], capture_output=True, text=True, env=_env(extra),
                          check=True, timeout=60)
    return _split(done.stdout, extra)


def _split(out: str, extra: dict[str, str]) -> tuple[str, str]:
    """heddle's output and rich's, checking heddle drew its table without rich's console
    (except for a dumb terminal, the one case here that heddle hands to rich)."""
    heddle_out, marker, rich_out = re.split(r"(===== rich.console imported: \w+\n)", out)
    assert marker.endswith(f"{extra.get('TERM') == 'dumb'}\n"), marker
    return heddle_out, rich_out


def _both_in_a_terminal(extra: dict[str, str], columns: int) -> tuple[str, str]:
    """The same, with stdout a real terminal (a pseudo-terminal `columns` wide)."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    child = subprocess.Popen([sys.executable, "-c", _BOTH], stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE, env=_env(extra))
    os.close(slave)
    chunks = []
    while True:  # until the child closes the terminal (EIO on Linux, b"" elsewhere)
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert child.wait(timeout=60) == 0, child.stderr.read()
    child.stderr.close()
    return _split(b"".join(chunks).decode().replace("\r\n", "\n"), extra)


def _styles(text: str) -> bool:
    bold, italic = "\x1b[1m" in text, "\x1b[3m" in text  # bold headers, italic title
    assert bold == italic
    return bold


@pytest.mark.parametrize(("extra", "styled"), [
    ({}, True), ({"COLUMNS": "90"}, True), ({"NO_COLOR": "1"}, True), ({"TERM": "xterm-256color"}, True),
    ({"COLORTERM": "truecolor"}, True), ({"FORCE_COLOR": ""}, False), ({"TTY_COMPATIBLE": "0"}, False),
])
def test_a_terminal_gets_what_rich_prints_there(extra, styled):
    heddle_out, rich_out = _both_in_a_terminal(extra, columns=97)
    assert heddle_out == rich_out
    assert _styles(heddle_out) == styled
    if "COLUMNS" not in extra:
        assert max(len(line) for line in heddle_out.replace("\x1b[1m", "").replace("\x1b[3m", "")
                   .replace("\x1b[0m", "").splitlines()) <= 97


@pytest.mark.parametrize(("extra", "styled"), [
    ({}, False), ({"FORCE_COLOR": "1"}, True), ({"TTY_COMPATIBLE": "1", "COLUMNS": "150"}, True),
    ({"FORCE_COLOR": "1", "TTY_COMPATIBLE": "0"}, False),
    ({"FORCE_COLOR": "1", "TERM": "dumb"}, False),  # rich draws this one (no colour system, 80 columns)
])
def test_a_pipe_gets_what_rich_prints_there(extra, styled):
    heddle_out, rich_out = _both_piped(extra)
    assert heddle_out == rich_out
    assert _styles(heddle_out) == styled


def test_the_copied_layout_was_checked_against_the_installed_rich():
    # draw copies rich's layout rules (divide_line, ratio_reduce, _collapse_widths, word
    # wrapping); a new rich may change them in ways the drawn tables above do not reach.
    # On a new rich: re-read rich/table.py, _wrap.py and text.wrap, run this file, then
    # update RICH_CHECKED.
    from importlib.metadata import version

    from heddle.cli.tables import RICH_CHECKED

    assert version("rich") == RICH_CHECKED

