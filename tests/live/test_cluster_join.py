"""Joining with a code and revoking, through the real CLI against a real nats-server: the
new node's credentials are stored 0600 and work, its password never reaches stdout, a wrong
code and a taken node id are refused, and `heddle nodes revoke` cuts the node off at once."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import nats
import pytest

from heddle.events.jetstream import flush_interest
from heddle.events.natsd import start_nats_server
from heddle.live import protocol as p
from heddle.live.cluster.join import Credentials, serve_joins
from heddle.live.cluster.roster import Roster
from tests.live.cluster_cli import WAIT_S, heddle


@pytest.fixture
def cluster(tmp_path):
    roster = Roster.load(tmp_path / "cluster-side")
    server = start_nats_server(tmp_path / "js", config_file=roster.config_file)
    yield roster, server
    server.stop()


async def test_join_with_code_then_revoke(cluster, tmp_path):
    roster, server = cluster
    control = await nats.connect(server.url, user="control", password=roster.control.password)
    await serve_joins(control, roster, server.url)
    node_dir = tmp_path / "studio-side"

    code, output = await heddle("join", "WRNG-WRNG-WRNG", "--nats", server.url, "--node-id", "studio",
                                "--data-dir", str(node_dir))
    assert code == 1 and "join code is wrong" in output

    typed = roster.join_code.lower().replace("-", " ")  # case and dashes are forgiven
    code, output = await heddle("join", typed, "--nats", server.url, "--node-id", "studio",
                                "--data-dir", str(node_dir))
    assert code == 0, output
    assert "joined" in output and "studio" in output
    credentials = Credentials.load(node_dir)
    assert credentials.password not in output
    assert stat.S_IMODE(os.stat(node_dir / "credentials.json").st_mode) == 0o600

    code, output = await heddle("join", roster.join_code, "--nats", server.url, "--node-id", "attic",
                                "--data-dir", str(tmp_path / "second"))
    assert code == 1 and "the join code was already used" in output  # one machine per code
    assert len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "second" / "credentials.json").exists()

    fresh = Roster.load(roster.directory.parent)
    fresh.rotate_join_code()
    fresh.save()
    fresh.reload_server()
    code, output = await joined_once_reloaded(fresh.join_code, server.url, "studio", tmp_path / "impostor")
    assert code == 1 and "already a member" in output

    capacity = await control.subscribe(p.subject(p.CAPACITY, node="studio"))
    await flush_interest(control)
    studio = await nats.connect(**credentials.connect_options(), allow_reconnect=False)
    await studio.publish(p.subject(p.CAPACITY, node="studio"), b"hello")
    assert (await capacity.next_msg(timeout=WAIT_S)).data == b"hello"

    code, output = await heddle("nodes", "revoke", "studio", "--data-dir", str(roster.directory.parent))
    assert code == 0 and "revoked studio" in output
    async with asyncio.timeout(WAIT_S):
        while not studio.is_closed:
            await asyncio.sleep(0.02)
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(**credentials.connect_options(), allow_reconnect=False, connect_timeout=3)
    code, output = await heddle("nodes", "list", "--data-dir", str(roster.directory.parent))
    assert code == 0 and "studio" not in output
    await control.close()


async def joined_once_reloaded(code: str, url: str, node: str, data_dir) -> tuple[int, str]:
    """`heddle join`, repeated while the just-reloaded server still refuses the new code
    (a reload takes effect a moment after SIGHUP: waiting on that condition)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            status, output = await heddle("join", code, "--nats", url, "--node-id", node, "--data-dir", str(data_dir))
            if "join code is wrong" not in output:
                return status, output


async def test_an_expired_code_is_refused(cluster, tmp_path):
    roster, server = cluster
    control = await nats.connect(server.url, user="control", password=roster.control.password)
    await serve_joins(control, roster, server.url)
    code = roster.rotate_join_code(valid_s=0.5)
    roster.save()
    roster.reload_server()
    async with asyncio.timeout(WAIT_S):  # the condition: the code's validity is over
        while time.time() < roster.join_expires_at:
            await asyncio.sleep(0.05)
    status, output = await joined_once_reloaded(code, server.url, "late", tmp_path / "late")
    assert status == 1 and "the join code has expired" in output and "heddle join-code" in output
    assert len(output.strip().splitlines()) == 1, output
    assert not (tmp_path / "late" / "credentials.json").exists()
    assert "late" not in Roster.load(roster.directory.parent).members
    await control.close()


async def test_new_join_code_replaces_the_old(cluster, tmp_path):
    roster, server = cluster
    control = await nats.connect(server.url, user="control", password=roster.control.password)
    await serve_joins(control, roster, server.url)
    old = roster.join_code
    code, output = await heddle("join-code", "--data-dir", str(roster.directory.parent))
    assert code == 0 and old not in output
    new = Roster.load(roster.directory.parent).join_code
    assert new in output
    code, output = await heddle("join", old, "--nats", server.url, "--node-id", "laptop",
                                "--data-dir", str(tmp_path / "laptop"))
    assert code == 1 and "join code is wrong" in output
    await control.close()
