"""Background runs of the UI: what-ifs and advice reports, each in a worker process
(`heddle.ui.worker`) whose progress lines the pages poll.

A run is kept in memory for the life of the server (its files stay under the work folder);
at most ``MAX_ACTIVE`` run at once, the rest wait their turn, so a few clicks cannot put the
machine's cores under a pile of twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "Runs"]

MAX_ACTIVE = 1
"""Worker processes running at once (a what-if of several setups already uses every core)."""
STALE_AFTER_S = 7 * 86400.0
"""Run folders of servers that did not clean up (killed) are removed after a week."""
KEEP_RUNS = 50
"""Runs remembered; the oldest finished ones are forgotten beyond this (their files stay)."""


@dataclass(slots=True)
class Run:
    id: str
    kind: str  # "whatif" or "advice"
    title: str
    spec: dict[str, Any]
    out: Path
    state: str = "waiting"  # waiting, running, done, failed
    progress: float | None = None  # 0..1 when known
    message: str = "waiting for the run before it to finish"
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    created_s: float = field(default_factory=time.time)
    ended_s: float | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed")

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "state": self.state,
                "progress": self.progress, "message": self.message, "error": self.error}


class Runs:
    """Start, track and list background runs (``start()``/``close()`` in the app's lifespan)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.folder = work_dir / "runs"  # this server's own subfolder once started
        self.runs: dict[str, Run] = {}
        self._gate = asyncio.Semaphore(MAX_ACTIVE)
        self._tasks: set[asyncio.Task] = set()
        self._procs: set[asyncio.subprocess.Process] = set()

    def start(self) -> None:
        """Make this server's own folder for run files, and remove folders of servers gone
        for more than STALE_AFTER_S (runs live in memory: no page reaches those any more)."""
        parent = self.work_dir / "runs"
        parent.mkdir(parents=True, exist_ok=True)
        for old in parent.iterdir():
            if time.time() - old.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(old, ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix="server-", dir=parent))

    def submit(self, kind: str, title: str, spec: dict[str, Any]) -> Run:
        run_id = f"{kind}-{os.urandom(4).hex()}"
        out = self.folder / run_id
        run = Run(run_id, kind, title, {**spec, "kind": kind, "out": str(out)}, out)
        self.runs[run_id] = run
        self._forget_old()
        task = asyncio.get_running_loop().create_task(self._execute(run), name=run_id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    def latest(self, kind: str) -> Run | None:
        found = [r for r in self.runs.values() if r.kind == kind]
        return max(found, key=lambda r: r.created_s) if found else None

    def _forget_old(self) -> None:
        ended = sorted((r for r in self.runs.values() if r.ended), key=lambda r: r.created_s)
        for run in ended[: max(0, len(self.runs) - KEEP_RUNS)]:
            del self.runs[run.id]

    async def _execute(self, run: Run) -> None:
        async with self._gate:
            run.state, run.message = "running", "starting"
            run.out.mkdir(parents=True, exist_ok=True)
            spec_path = run.out / "spec.json"
            spec_path.write_text(json.dumps(run.spec), encoding="utf-8")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "heddle.ui.worker", str(spec_path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            self._procs.add(proc)
            try:
                await self._follow(run, proc)
            finally:
                self._procs.discard(proc)
        run.ended_s = time.time()

    async def _follow(self, run: Run, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        stderr = asyncio.ensure_future(proc.stderr.read())
        async for line in proc.stdout:
            try:
                news = json.loads(line)
            except ValueError:
                continue  # a library printing to stdout: not ours
            if "error" in news:
                run.error = news["error"]
            if news.get("progress") is not None:
                run.progress = news["progress"]
            if "message" in news:
                run.message = news["message"]
        code = await proc.wait()
        tail = (await stderr).decode(errors="replace").strip().splitlines()[-3:]
        result = run.out / "result.json"
        if code == 0 and result.exists():
            run.result = json.loads(result.read_text(encoding="utf-8"))
            run.state, run.progress, run.message = "done", 1.0, "done"
            return
        run.state = "failed"
        run.error = run.error or (" ".join(tail) or f"the run stopped (exit code {code})")
        run.message = "failed"

    async def close(self) -> None:
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        shutil.rmtree(self.folder, ignore_errors=True)
