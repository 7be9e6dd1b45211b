"""A cluster in one command: `heddle up` as a real process (nats-server with the roster's
permissions, control plane, join service, mDNS on loopback); `heddle agent` with no URL in
another process finds it, joins with the printed code, runs work, and on restart connects
with its stored credentials. A wrong code is refused; the agent's credentials cannot act as
the control plane; no password reaches a terminal or a log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
import typer
from typer.testing import CliRunner

from heddle.cli.cluster import register as register_cluster
from heddle.live import protocol as p
from heddle.live.cluster.access import DISCOVERED_SUBJECT, inbox_prefix
from heddle.live.cluster.join import (
    USER_CREDENTIALS_FILE,
    Credentials,
    JoinError,
    join,
    tls_options,
)
from heddle.live.cluster.roster import Roster
from heddle.live.cluster.service import DiscoveredReply
from heddle.live.control.client import ControlClient, ControlError
from heddle.live.control.submission import load_submission
from tests.live.clusterkit import REPO, WAIT_S, echo_tasks, workload_file


@dataclass
class Up:
    process: subprocess.Popen
    data_dir: Path
    name: str
    env: dict
    output: list[str] = field(default_factory=list)
    codes_made: int = 0  # join codes made since `heddle up` printed its own (each replaces the last)

    def text(self) -> str:
        return "".join(self.output)

    def wait_output(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + WAIT_S
        while (match := re.search(pattern, self.text())) is None:
            assert time.monotonic() < deadline and self.process.poll() is None, self.text()
            time.sleep(0.05)  # polling a condition: the pump thread appends the output
        return match

    @property
    def url(self) -> str:
        return self.wait_output(r"NATS at (nats://127\.0\.0\.1:\d+)").group(1)

    async def code(self) -> str:
        """A fresh join code (each lets one machine join), made as `heddle join-code` makes
        it, once the reloaded server takes it."""
        roster = Roster.load(self.data_dir)
        code = roster.rotate_join_code()
        self.codes_made += 1
        roster.save()
        assert roster.reload_server()
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    nc = await nats.connect(self.url, user="join", password=code, allow_reconnect=False,
                                            connect_timeout=3, inbox_prefix=inbox_prefix("join"),
                                            **tls_options(roster.certificate))
                except Exception:  # noqa: BLE001 -- refused until the reload took effect
                    await asyncio.sleep(0.05)
                    continue
                await nc.close()
                return code

    @property
    def printed_code(self) -> str:
        return self.wait_output(r"join code: (\w{4}-\w{4}-\w{4})").group(1)

    def heddle(self, *args: str) -> subprocess.CompletedProcess:
        """A `heddle` live command on the cluster's machine (it logs in as the admin), as
        ``python -m heddle.cli.live`` (the same command without the others' imports)."""
        return subprocess.run([sys.executable, "-m", "heddle.cli.live", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=WAIT_S, check=False)


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("up")
    env = {**os.environ, "HEDDLE_CONFIG": str(tmp / "none.yaml"), "HEDDLE_DATA_DIR": str(tmp / "home"),
           "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    name = f"test-{uuid.uuid4().hex[:8]}"  # other test runs may announce on this machine too
    process = subprocess.Popen(
        [sys.executable, "-m", "heddle.cli.main", "up", "--host", "127.0.0.1", "--port", "0",
         "--no-agent", "--name", name],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    cluster = Up(process, tmp / "home", name, env)

    def pump() -> None:
        for line in process.stdout:
            cluster.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        cluster.wait_output("another machine joins with")
        yield cluster
    finally:
        stop(process, signal.SIGINT)  # Ctrl-C: up stops its children in order


def start_agent(up: Up, data_dir: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = data_dir.with_suffix(".log")
    env = {**up.env, "HEDDLE_DATA_DIR": str(data_dir)}
    with log.open("a") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "heddle.cli.agent", "--device", "m1-8", "--report-every", "0.5", *args],
            cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return process, log


async def admin(up: Up) -> ControlClient:
    login = Credentials.load(up.data_dir, USER_CREDENTIALS_FILE)
    return ControlClient(await nats.connect(up.url, **login.auth_options()), sender="tester")


async def wait_active(up: Up, node: str, process: subprocess.Popen, log: Path) -> None:
    client = await admin(up)
    try:
        async with asyncio.timeout(WAIT_S):
            while not any(n.node_id == node and n.status == "active" for n in (await client.fleet()).nodes):
                assert process.poll() is None, log.read_text()
                await asyncio.sleep(0.05)
    finally:
        await client.close()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_agent_finds_the_cluster_joins_runs_work_and_rejoins_after_a_restart(up, tmp_path):
    laptop_dir = tmp_path / "laptop"
    # the code `heddle up` printed, typed in lower case; a test that ran first and made a newer
    # code replaced it (failed so in a shuffled run): then the newest, as `heddle join-code` prints it
    code = up.printed_code if not up.codes_made else await up.code()
    agent, log = start_agent(up, laptop_dir, "--join-code", code.lower(), "--cluster", up.name,
                             "--node-id", "laptop")
    try:
        await wait_active(up, "laptop", agent, log)
        assert f"found cluster {up.name}" in log.read_text()
        up.wait_output("node laptop joined")
        credentials = Credentials.load(laptop_dir)
        assert credentials.user == "laptop" and credentials.nats_url == up.url
        assert credentials.tls_cert == Roster.load(up.data_dir).certificate  # pinned, checked against mDNS
        assert stat.S_IMODE(os.stat(laptop_dir / "credentials.json").st_mode) == 0o600

        path = workload_file(tmp_path, "hello.yaml", echo_tasks(3))
        done = up.heddle("submit", str(path), "--job", "hello", "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
        client = await admin(up)
        tasks = (await client.status("hello")).tasks
        await client.close()
        assert [t.node for t in tasks] == ["laptop"] * 3  # the only node ran them

        stop(agent)  # drains and leaves; the next start needs no code and no URL
        # every report of the work was acknowledged (their acks come to the node's own inbox)
        assert "not acknowledged" not in log.read_text() and "permissions violation" not in log.read_text()
        agent, log = start_agent(up, laptop_dir)
        await wait_active(up, "laptop", agent, log)
        assert log.read_text().count("found cluster") == 1  # the restart did not browse again
    finally:
        stop(agent)
    passwords = [m.password for m in Roster.load(up.data_dir).members.values() if m.name != "join"]
    shown = up.text() + log.read_text()
    assert passwords and not [pw for pw in passwords if pw in shown]


async def test_a_wrong_code_a_wrong_certificate_and_plain_text_are_refused(up, tmp_path):
    agent, log = start_agent(up, tmp_path / "stranger", "--join-code", "WRNG-WRNG-WRNG", "--nats", up.url)
    assert agent.wait(timeout=WAIT_S) == 1
    assert "the join code is wrong" in log.read_text()
    assert not (tmp_path / "stranger" / "credentials.json").exists()

    # Someone else answering at the announced address: the right code is never sent to it.
    with pytest.raises(JoinError, match="not the one the cluster announced"):
        await join(up.url, await up.code(), "mallory", tmp_path / "mallory", fingerprint="00" + "0" * 77)
    assert not (tmp_path / "mallory" / "credentials.json").exists()

    login = Credentials.load(up.data_dir, USER_CREDENTIALS_FILE)
    with pytest.raises(Exception, match="(?i)ssl|tls|certificate"):  # no password in plain text
        await nats.connect(up.url, user=login.user, password=login.password, allow_reconnect=False,
                           connect_timeout=5)


async def test_an_agents_credentials_cannot_act_as_the_control_plane(up, tmp_path):
    agent, log = start_agent(up, tmp_path / "desk", "--join-code", await up.code(), "--nats", up.url, "--node-id", "desk")
    try:
        await wait_active(up, "desk", agent, log)
    finally:
        stop(agent)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    desk = Credentials.load(tmp_path / "desk")
    nc = await nats.connect(**desk.connect_options(), error_cb=on_error, allow_reconnect=False)
    forged = [p.subject(p.ASSIGN, node="laptop"), "heddle.events.Task.t1.InternalFinalized", p.SUBMIT, p.DRAIN,
              p.subject(p.CAPACITY, node="laptop")]
    for subject in forged:
        await nc.publish(subject, b"forged")
    await nc.subscribe(p.all_nodes(p.ASSIGN))
    async with asyncio.timeout(WAIT_S):
        while len(errors) < len(forged) + 1:
            await asyncio.sleep(0.02)
    await nc.close()
    for subject in forged:
        assert any(f'publish to "{subject.lower()}"' in e for e in errors), (subject, errors)
    assert any('subscription to "heddle.v1.assign.*"' in e for e in errors)


async def test_a_revoked_node_stays_out_when_the_next_one_joins(up, tmp_path):
    await join(up.url, await up.code(), "attic", tmp_path / "attic", Roster.load(up.data_dir).fingerprint)
    attic = Credentials.load(tmp_path / "attic")
    revoked = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "heddle.cli.cluster", "nodes", "revoke", "attic",
                         "--data-dir", str(up.data_dir)], cwd=REPO, env=up.env, capture_output=True,
        text=True, timeout=WAIT_S, check=False)
    assert revoked.returncode == 0 and "revoked attic" in revoked.stdout, revoked.stdout + revoked.stderr
    # The join service reads the roster afresh: the next join must not bring attic back.
    await join(up.url, await up.code(), "cellar", tmp_path / "cellar", Roster.load(up.data_dir).fingerprint)
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(**attic.connect_options(), allow_reconnect=False, connect_timeout=5)
    cellar = await nats.connect(**Credentials.load(tmp_path / "cellar").connect_options(), allow_reconnect=False)
    await cellar.close()


async def waiting_nodes(up: Up) -> list[str]:
    """The machines `heddle up` sees waiting to join (as `heddle fleet` asks for them)."""
    client = await admin(up)
    try:
        answer = await client.nc.request(DISCOVERED_SUBJECT, b"{}", timeout=WAIT_S)
    finally:
        await client.close()
    return [n.node_id for n in DiscoveredReply.model_validate_json(answer.data).nodes]


async def test_a_machine_waiting_for_the_code_shows_in_fleet_until_it_joins(up, tmp_path):
    node = f"shelf-{uuid.uuid4().hex[:6]}"  # other test runs on this machine announce theirs too
    env = {**up.env, "HEDDLE_DATA_DIR": str(tmp_path / "shelf")}
    log = tmp_path / "shelf.log"
    with log.open("w") as handle:
        agent = subprocess.Popen(  # noqa: ASYNC220 -- returns once started; the waits below are on conditions
            [sys.executable, "-m", "heddle.cli.agent", "--device", "m1-8", "--report-every", "0.5",
             "--nats", up.url, "--node-id", node],
            cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True)
    try:
        async with asyncio.timeout(WAIT_S):  # its mDNS announcement reaches `heddle up`
            while node not in await waiting_nodes(up):
                assert agent.poll() is None, log.read_text()
                await asyncio.sleep(0.1)
        shown = up.heddle("fleet")
        assert shown.returncode == 0, shown.stderr
        assert re.search(rf"not joined: \d+.*{node} +│ m1-8", shown.stdout, re.DOTALL), shown.stdout

        agent.stdin.write(await up.code() + "\n")  # the code, typed on that machine
        agent.stdin.flush()
        await wait_active(up, node, agent, log)
        assert node not in await waiting_nodes(up)  # a member now, and no longer announcing
    finally:
        stop(agent)


def users(up: Up, *args: str):
    """`heddle users ...` on the cluster's machine (in this process: the command is plain
    file work and a server reload, and a process start costs seconds on a loaded machine)."""
    app = typer.Typer()
    register_cluster(app)
    return CliRunner().invoke(app, ["users", *args, "--data-dir", str(up.data_dir)], env=up.env)


def elsewhere(up: Up, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """A `heddle` live command on another machine: no login of its own, only the file given."""
    env = {**up.env, "HEDDLE_DATA_DIR": str(tmp_path / "elsewhere")}
    return subprocess.run([sys.executable, "-m", "heddle.cli.live", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=WAIT_S, check=False)


async def as_person(login: Credentials) -> ControlClient:
    return await ControlClient.connect(login.nats_url, asker=login.asker, **login.auth_options())


DIARY = """tasks:
  - {id: t0, kind: processor, cpu_seconds: 0.001}
run:
  t0: {kind: echo, payload: {text: bo-diary-entry}}
"""


async def test_a_user_reads_only_its_own_jobs_and_an_observer_only_the_fleet(up, tmp_path):
    logins = {}
    for name, role in (("ana", "user"), ("bo", "user"), ("eve", "observer")):
        added = users(up, "add", name, "--role", role, "-o", str(tmp_path / f"{name}.json"))
        assert added.exit_code == 0, added.output
        logins[name] = Credentials.load(tmp_path, f"{name}.json")
        assert logins[name].password not in added.output  # shown as its length only
        assert stat.S_IMODE(os.stat(tmp_path / f"{name}.json").st_mode) == 0o600
        assert logins[name].nats_url == up.url and logins[name].tls_cert == Roster.load(up.data_dir).certificate
    listed = users(up, "list")
    assert re.search(r"bo\s+user\s+owner bo", listed.output) and re.search(r"eve\s+observer", listed.output)
    assert not [login for login in logins.values() if login.password in listed.output]

    agent, log = start_agent(up, tmp_path / "shed", "--join-code", await up.code(), "--nats", up.url,
                             "--node-id", "shed")
    path = workload_file(tmp_path, "diary.yaml", DIARY)
    try:
        await wait_active(up, "shed", agent, log)
        bo = await as_person(logins["bo"])
        await bo.submit("diary", load_submission(path, "diary"))
        async with asyncio.timeout(WAIT_S):
            while (await bo.status("diary")).jobs.get("diary", {}).get("completed", 0) < 1:
                await asyncio.sleep(0.05)
        await bo.close()
        # bo reads it from its own machine, with the file the admin handed over
        shown = elsewhere(up, tmp_path, "status", "diary", "--credentials", str(tmp_path / "bo.json"))
        assert shown.returncode == 0 and "bo-diary-entry" in shown.stdout, shown.stdout + shown.stderr

        ana = await as_person(logins["ana"])
        try:
            with pytest.raises(ControlError, match="no job 'diary' of yours"):
                await ana.status("diary")
            assert "diary" not in (await ana.status()).jobs
            with pytest.raises(ControlError, match="submitted by someone else"):  # no taking it over
                await ana.submit("diary", load_submission(path, "diary"))
            with pytest.raises(ControlError, match="no task 'diary-t0' of yours"):
                await ana.cancel("diary-t0")
            posing = workload_file(tmp_path, "posing.yaml", echo_tasks(1, privacy_owners=[("personal", "bo")]))
            with pytest.raises(ControlError, match=r"tasks\[0\]\.task\.owner: 'bo' is not yours"):
                await ana.submit("ana-job", load_submission(posing, "ana-job"))  # bo's trusted nodes
            ana.asker = "bo"  # posing as bo: the server refuses it at once
            with pytest.raises(ControlError, match='(?i)permissions violation for publish to "heddle.v1.user.bo.status"'):
                await ana.status("diary")
        finally:
            await ana.close()
        # nor through the event log: a user has no JetStream API at all
        errors = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        nc = await nats.connect(**logins["ana"].connect_options(), allow_reconnect=False, error_cb=on_error)
        reading = asyncio.ensure_future(nc.jetstream(timeout=WAIT_S).subscribe("heddle.events.Task.diary-t0.>"))
        async with asyncio.timeout(WAIT_S):
            while not any('permissions violation for publish to "$js.api.' in e for e in errors):
                await asyncio.sleep(0.02)
        reading.cancel()
        await nc.close()

        watched = elsewhere(up, tmp_path, "fleet", "--credentials", str(tmp_path / "eve.json"))
        assert watched.returncode == 0 and "shed" in watched.stdout, watched.stdout + watched.stderr
        eve = await as_person(logins["eve"])
        for refused in (eve.submit("eve-job", load_submission(path, "eve-job")), eve.status("diary")):
            with pytest.raises(ControlError, match="(?i)permissions violation"):
                await refused
        await eve.close()
    finally:
        stop(agent)

    bo = await as_person(logins["bo"])
    revoked = users(up, "revoke", "bo")
    assert revoked.exit_code == 0 and "revoked bo" in revoked.output, revoked.output
    async with asyncio.timeout(WAIT_S):  # the server closes bo's open connection at once
        while not bo.nc.is_closed:
            await asyncio.sleep(0.02)
    with pytest.raises(ControlError, match="(?i)authorization"):
        await as_person(logins["bo"])
    node = users(up, "revoke", "shed")
    assert node.exit_code == 1 and "heddle nodes revoke shed" in node.output


def test_up_refuses_a_bad_fleet_file_before_starting_anything(tmp_path):
    """`heddle up --fleet` hands the file's cloud offers and budgets to the control plane; a
    file that does not load stops the command in one line, before any process starts."""
    bad = tmp_path / "fleet.yaml"
    bad.write_text("nodes:\n  - id: a\n    device: no-such-device\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "heddle.cli.main", "up", "--fleet", str(bad), "--port", "0",
                           "--host", "127.0.0.1", "--no-announce", "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: option --fleet:"), proc.stderr
    assert all(f"{bad}:" in line for line in lines), proc.stderr  # each problem names file and line
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "nats").exists()  # no server was started
