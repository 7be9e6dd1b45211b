"""Who may do what, against a real nats-server started with the generated configuration:
an agent cannot pose as another node, read its assignments or forge control-plane messages;
wrong and revoked credentials are refused; a user without the submit role cannot submit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys

import nats
import pytest

from heddle.events.jetstream import flush_interest
from heddle.events.natsd import start_nats_server
from heddle.live import protocol as p
from heddle.live.cluster.access import AccessError, inbox_prefix
from heddle.live.cluster.roster import Roster

WAIT_S = 20.0


@pytest.fixture
def cluster(tmp_path):
    roster = Roster.load(tmp_path)
    for node in ("node-a", "node-b"):
        roster.add(node, "agent")
    roster.add("ana", "user")
    roster.add("watcher", "observer")
    roster.save()
    server = start_nats_server(tmp_path / "js", config_file=roster.config_file)
    yield roster, server
    server.stop()


class Client:
    """A connection as one member that records the server's permission errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = None

    async def connect(self, url: str, name: str, password: str) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(url, user=name, password=password, inbox_prefix=inbox_prefix(name),
                                     allow_reconnect=False, connect_timeout=3, error_cb=on_error)
        return self

    async def wait_error(self, text: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while not any(text in e.lower() for e in self.errors):
                await asyncio.sleep(0.02)


async def member(roster: Roster, server, name: str) -> Client:
    return await Client().connect(server.url, name, roster.members[name].password)


async def request_until_answered(client: Client, subject: str, data: bytes):
    """A request, repeated while the server reports no responders: under load a just-made
    subscription was seen to reach the publisher's side a moment after the subscriber's
    flush returned (rarely; a wait on that condition, not a sleep)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                return await client.nc.request(subject, data, timeout=WAIT_S)
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.05)


async def reloaded(roster: Roster, server) -> None:
    """Have the server re-read its configuration, and wait until it says it has: a client
    connecting while it reloads may be cut off (a ConnectionResetError in a full run)."""
    def reloads() -> int:
        return sum("Reloaded server configuration" in line for line in server.log)

    before = reloads()
    assert roster.reload_server()
    async with asyncio.timeout(WAIT_S):
        while reloads() == before:
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def members(roster: Roster, server, *names: str):
    clients = [await member(roster, server, n) for n in names]
    try:
        yield clients
    finally:
        for client in clients:
            await client.nc.close()


async def received_in_order(sub, legit: bytes) -> list[bytes]:
    """Messages up to and including ``legit``: the server delivers in order, so a forged
    message published before it and not among these was dropped."""
    seen = []
    async with asyncio.timeout(WAIT_S):
        while not seen or seen[-1] != legit:
            seen.append((await sub.next_msg(timeout=WAIT_S)).data)
    return seen


async def test_agent_cannot_pose_as_another_node(cluster):
    roster, server = cluster
    async with members(roster, server, "control", "node-a", "node-b") as (control, a, b):
        capacity = await control.nc.subscribe(p.all_nodes(p.CAPACITY))
        left = await control.nc.subscribe(p.all_nodes(p.LEFT))
        await flush_interest(control.nc)
        await a.nc.publish(p.subject(p.CAPACITY, node="node-b"), b"forged capacity")
        await a.nc.publish(p.subject(p.LEFT, node="node-b"), b"forged left")
        await a.wait_error("permissions violation for publish")
        await b.nc.publish(p.subject(p.CAPACITY, node="node-b"), b"real b")
        await b.nc.publish(p.subject(p.LEFT, node="node-b"), b"real b")
        await a.nc.publish(p.subject(p.CAPACITY, node="node-a"), b"real a")
        assert b"forged capacity" not in await received_in_order(capacity, b"real a")
        assert await received_in_order(left, b"real b") == [b"real b"]


async def test_agent_reads_only_its_own_assignments(cluster):
    roster, server = cluster

    async def accept(msg) -> None:
        await msg.respond(b"accepted by b")

    async with members(roster, server, "control", "node-a", "node-b") as (control, a, b):
        await a.nc.subscribe(p.subject(p.ASSIGN, node="node-b"))
        await a.nc.subscribe(p.all_nodes(p.CONTROL))
        await a.nc.subscribe("_INBOX.>")  # everyone's replies
        await a.wait_error("permissions violation for subscription to \"heddle.v1.assign.node-b\"")
        await a.wait_error("permissions violation for subscription to \"heddle.v1.control.*\"")
        await a.wait_error("permissions violation for subscription to \"_inbox.>\"")
        await b.nc.subscribe(p.subject(p.ASSIGN, node="node-b"), cb=accept)
        await b.nc.flush()
        reply = await request_until_answered(control, p.subject(p.ASSIGN, node="node-b"), b"task")
        assert reply.data == b"accepted by b"  # answering a request is allowed, on its own inbox


async def test_only_the_control_plane_assigns_and_finalizes(cluster):
    roster, server = cluster
    async with members(roster, server, "control", "node-a", "node-b") as (control, a, b):
        assignments = await b.nc.subscribe(p.subject(p.ASSIGN, node="node-b"))
        finalized = await control.nc.subscribe("heddle.events.>")
        await flush_interest(b.nc)
        await flush_interest(control.nc)
        await a.nc.publish(p.subject(p.ASSIGN, node="node-b"), b"forged assignment")
        await a.nc.publish("heddle.events.Task.t1.InternalFinalized", b"forged")
        await a.wait_error("permissions violation for publish to \"heddle.v1.assign.node-b\"")
        await a.wait_error("permissions violation for publish to \"heddle.events.task.t1.internalfinalized\"")
        await control.nc.publish(p.subject(p.ASSIGN, node="node-b"), b"real assignment")
        await control.nc.publish("heddle.events.Task.t1.InternalFinalized", b"real")
        assert await received_in_order(assignments, b"real assignment") == [b"real assignment"]
        assert await received_in_order(finalized, b"real") == [b"real"]


async def test_users_ask_only_as_themselves_observers_only_for_the_fleet(cluster):
    roster, server = cluster
    roster.add("bo", "user")
    roster.save()
    await reloaded(roster, server)

    async def intake(msg) -> None:
        await msg.respond(b"ok " + msg.subject.encode())

    async with members(roster, server, "control", "ana", "watcher") as (control, ana, watcher):
        await control.nc.subscribe(p.subject(p.USER, user="*", what="*"), cb=intake)
        await control.nc.subscribe(p.subject(p.QUERY, what="fleet"), cb=intake)
        await control.nc.flush()
        own = p.subject(p.USER, user="ana", what="submit")
        assert (await request_until_answered(ana, own, b"job")).data == b"ok " + own.encode()
        fleet = p.subject(p.QUERY, what="fleet")
        assert (await request_until_answered(watcher, fleet, b"?")).data == b"ok " + fleet.encode()
        assert (await request_until_answered(ana, fleet, b"?")).data == b"ok " + fleet.encode()
        # As someone else, or on the shared subjects that see every job: refused by the server.
        for subject in (p.subject(p.USER, user="bo", what="status"), p.SUBMIT, p.subject(p.QUERY, what="status"),
                        p.DRAIN):
            await ana.nc.publish(subject, b"x")
            await ana.wait_error(f'permissions violation for publish to "{subject.lower()}"')
        for subject in (p.subject(p.USER, user="watcher", what="submit"), p.SUBMIT,
                        p.subject(p.QUERY, what="status")):
            await watcher.nc.publish(subject, b"x")
            await watcher.wait_error(f'permissions violation for publish to "{subject.lower()}"')


async def test_wrong_and_revoked_credentials_are_refused(cluster):
    roster, server = cluster
    with pytest.raises(Exception, match="(?i)authorization"):
        await Client().connect(server.url, "node-a", "not-the-password")
    b = await member(roster, server, "node-b")
    old_password = roster.members["node-b"].password
    roster.revoke("node-b")
    roster.save()
    await reloaded(roster, server)
    async with asyncio.timeout(WAIT_S):  # the server drops the revoked node's connection
        while not b.nc.is_closed:
            await asyncio.sleep(0.02)
    with pytest.raises(Exception, match="(?i)authorization"):
        await Client().connect(server.url, "node-b", old_password)
    a = await member(roster, server, "node-a")  # the others keep their access
    await a.nc.close()


def test_credentials_files_are_private_and_names_are_checked(cluster):
    roster, _ = cluster
    for path in (roster.file, roster.config_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(AccessError, match="name"):
        roster.add("node.*", "agent")
    with pytest.raises(AccessError, match="role"):
        roster.add("node-c", "root")
    with pytest.raises(AccessError, match="node-zz"):
        roster.revoke("node-zz")


def test_a_stale_pid_file_signals_no_other_process(tmp_path):
    """nats-server's pid file outlives a server that was killed, and the pid may belong to
    another process since: changing the roster then must not send that process SIGHUP (which
    ends most processes). The stand-in notes each signal it handles, in the order Python runs
    their handlers (by signal number, so a SIGHUP sent before the SIGUSR1 shows first)."""
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGHUP, lambda *_: print('HUP', flush=True))\n"
            "signal.signal(signal.SIGUSR1, lambda *_: (print('USR1', flush=True), sys.exit(0)))\n"
            "print('ready', flush=True)\n"
            "while True:\n    time.sleep(1)\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "ready\n"
        roster = Roster.load(tmp_path)
        roster.add("node-a", "agent")
        roster.save()
        roster.pid_file.write_text(f"{other.pid}\n")
        assert not roster.reload_server()
        other.send_signal(signal.SIGUSR1)
        assert other.communicate(timeout=WAIT_S)[0].splitlines() == ["USR1"]
    finally:
        other.kill()
        other.wait()
