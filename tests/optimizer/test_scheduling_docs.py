"""docs/scheduling.md executes: its example runs and says what the page says it does."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def test_the_example_runs(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc example is the test
    assert capsys.readouterr().out.splitlines() == ["start a on mini", "waits b", "start b on mini"]
