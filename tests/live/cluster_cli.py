"""Run the cluster commands as a separate process (`python -m heddle.cli.cluster`, the
`heddle` command without the other commands' imports)."""

from __future__ import annotations

import asyncio
import sys

WAIT_S = 30.0
"""Upper bound on any wait (a CLI process starts in ~1 s, ~6 s on a loaded machine)."""


async def heddle(*args: str) -> tuple[int, str]:
    """Exit code and combined stdout/stderr of one cluster command."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "heddle.cli.cluster", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), WAIT_S)
    return process.returncode, output.decode()
