"""docs/live.md's "Running a cluster" and "Submitting work" run as written: `heddle up` as a
real process (isolated: its own data dir, a free port, loopback), the submission file from
the docs, each documented command, then Ctrl-C stopping all three processes cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nats
from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.live.cluster.join import USER_CREDENTIALS_FILE, Credentials
from heddle.live.control.client import ControlClient
from tests.live.clusterkit import REPO, WAIT_S, Cluster

DOC = REPO / "docs" / "live.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(section), re.DOTALL)


def test_the_documented_session_runs_and_ctrl_c_stops_everything(tmp_path, monkeypatch):
    (up_line,) = _blocks("Running a cluster", "bash")
    args = shlex.split(up_line)
    assert args[:2] == ["heddle", "up"]
    env = {**os.environ, "COLUMNS": "250", "HEDDLE_CONFIG": str(tmp_path / "none.yaml")}
    # started as a script's background job is (SIGINT ignored, which exec keeps): Ctrl-C must
    # stop it all the same (it once ignored it and its control plane outlived it)
    up = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" "$@"', sys.executable, "-m", "heddle.cli.main",
         *args[1:], "--data-dir", str(tmp_path / "data"), "--port", "0", "--host", "127.0.0.1",
         "--no-announce"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    try:
        output: list[str] = []
        joined = threading.Event()

        def pump() -> None:  # keep reading, or the children block on a full pipe
            for line in up.stdout:
                output.append(line)
                if "another machine joins with" in line:
                    joined.set()
            joined.set()

        threading.Thread(target=pump, daemon=True).start()
        assert joined.wait(WAIT_S) and up.poll() is None, "".join(output)
        text = "".join(output)
        assert re.search(r"heddle agent --join-code \w{4}-\w{4}-\w{4}", text)
        url = re.search(r"NATS at (nats://127\.0\.0\.1:\d+)", text).group(1)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HEDDLE_CONFIG", str(tmp_path / "none.yaml"))
        monkeypatch.setenv("HEDDLE_DATA_DIR", str(tmp_path / "data"))  # the client commands' login
        (workload,) = _blocks("Submitting work", "yaml")
        Path("hello.yaml").write_text(workload, encoding="utf-8")
        asyncio.run(_node_up(url, "studio"))  # what a user sees in `heddle fleet` first
        runner = CliRunner()
        for command in _blocks("Submitting work", "bash")[0].splitlines():
            if shlex.split(command)[1] == "drain":  # the only node: drain it once the work ended
                try:
                    assert asyncio.run(_outcome(url)) == {"completed": 4, "cancelled": 1}
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n{''.join(output[-40:])}") from None
            result = runner.invoke(app, [*shlex.split(command)[1:], "--nats", url], env={"COLUMNS": "200"})
            assert result.exit_code == 0, f"{command}: {result.output}"
        up.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            assert up.wait(timeout=WAIT_S) == 0, "".join(output[-40:])
        except subprocess.TimeoutExpired:
            raise AssertionError("heddle up did not stop on Ctrl-C:\n" + "".join(output[-40:])) from None
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nats-server is gone
    finally:
        if up.poll() is None:  # a failed test: Ctrl-C first, or up's children outlive it
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()


def _waiter() -> Cluster:
    kit = Cluster.__new__(Cluster)  # only its waiting helper: heddle up owns the processes
    kit.control_log = []
    return kit


async def _login(url: str):
    """Connected as the person at the cluster's machine (`heddle up` stored the login)."""
    login = Credentials.load(Path(os.environ["HEDDLE_DATA_DIR"]), USER_CREDENTIALS_FILE)
    return await nats.connect(url, **login.auth_options())


async def _node_up(url: str, node: str) -> None:
    client = ControlClient(await _login(url), sender="docs")
    try:
        await _waiter().wait_nodes(client, {node})
    finally:
        await client.close()


async def _outcome(url: str) -> dict:
    client = ControlClient(await _login(url), sender="docs")
    kit = _waiter()

    async def ended():
        status = await client.status("hello", limit=10)
        counts = status.jobs.get("hello", {})
        if sum(counts.get(k, 0) for k in ("completed", "failed", "rejected", "cancelled")) == 5:
            return counts
        kit.control_log = [f"{t.task_id} {t.status} {t.node} {t.reason}\n" for t in status.tasks]
        return None

    try:
        return await kit.wait_for(ended, "the documented job to end")
    finally:
        await client.close()
