"""The Python examples in docs/events.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_python_examples_in_the_events_doc_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, "docs/events.md lost its examples"
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__docs__"})  # noqa: S102
    out = capsys.readouterr().out
    assert "['TaskSubmitted', 'TaskPlaced']" in out
    assert "['TaskCompleted', 'TaskPlaced', 'TaskStarted', 'TaskSubmitted']" in out
