"""The UI under test: `heddle ui` as its own OS process on a free loopback port, and a real
Chromium (Debian's, through its executable path) driven by Playwright.

Without Chromium the browser tests are skipped with the command that installs it, except
under CI=true, where they fail: CI installs it (.ci/run) and must run them.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from heddle.ui.server import READY_LINE

REPO = Path(__file__).resolve().parents[2]
START_S = 90.0
"""Upper bound on the server's start (imports take seconds on a loaded machine)."""
INSTALL_HINT = ("no Chromium found for the browser tests: install it with "
                "`sudo apt-get install -y chromium-headless-shell` (or `chromium`), "
                "or point HEDDLE_CHROMIUM at a Chromium binary")


def chromium_path() -> str | None:
    """HEDDLE_CHROMIUM, else Debian's chromium-headless-shell or chromium on PATH."""
    given = os.environ.get("HEDDLE_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


def need_chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL_HINT + " (CI=true: the browser tests must run)")
        pytest.skip(INSTALL_HINT)
    return path


class UiProcess:
    """``python -m heddle.cli.ui`` until ``stop()``; ``url`` once it accepts connections."""

    def __init__(self, tmp: Path, *args: str) -> None:
        env = {**os.environ, "HEDDLE_CONFIG": str(tmp / "no-config.yaml")}
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heddle.cli.ui", "--port", "0", "--data-dir", str(tmp / "data"), *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.log.append(line)
                if READY_LINE in line:
                    ready.put(line.split()[3])
            ready.put(None)

        threading.Thread(target=pump, daemon=True).start()
        try:
            url = ready.get(timeout=START_S)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise RuntimeError("heddle ui did not start:\n" + "".join(self.log[-30:]))
        self.url = url.rstrip("/")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
