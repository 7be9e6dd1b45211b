"""Two sites joined by a leaf node over TLS (certificates made here with openssl): the home
site's control plane assigns work to a node at the office and gets its answer; a leaf that
does not trust the hub's certificate authority never links."""

from __future__ import annotations

import asyncio
import re
import subprocess

import nats
import pytest

from heddle.events.natsd import start_nats_server
from heddle.live import protocol as p
from heddle.live.cluster.access import inbox_prefix, new_secret
from heddle.live.cluster.roster import Roster
from heddle.live.cluster.sites import LeafLink, hub_leaf_config, leaf_remote_config

WAIT_S = 30.0


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory, name: str):
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(cert))
    return key, cert


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, a hub certificate it signed for 127.0.0.1, and a stranger CA."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca = make_ca(d, "heddle-ca")
    _, stranger = make_ca(d, "stranger-ca")
    key, csr, cert, ext = d / "hub.key", d / "hub.csr", d / "hub.pem", d / "hub.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hub", "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return {"ca": ca, "stranger": stranger, "cert": cert, "key": key}


def site(directory, members: dict[str, str], extra: str):
    roster = Roster.load(directory)
    for name, role in members.items():
        roster.add(name, role)
    roster.save()
    roster.config_file.write_text(roster.config_file.read_text() + extra)
    return roster, start_nats_server(directory / "js", config_file=roster.config_file)


def leaf_port(server) -> str:
    return re.search(r"Listening for leafnode connections on (\S+:\d+)", "".join(server.log)).group(1)


async def connect(server, roster: Roster, name: str):
    return await nats.connect(server.url, user=name, password=roster.members[name].password,
                              inbox_prefix=inbox_prefix(name), allow_reconnect=False)


async def test_office_node_runs_work_placed_at_home(tmp_path, certificates):
    link = LeafLink("office-link", new_secret())
    home, home_server = site(tmp_path / "home", {}, hub_leaf_config(
        link, certificates["cert"], certificates["key"], host="127.0.0.1", port=-1))
    office, office_server = site(tmp_path / "office", {"office-pc": "agent"},
                                 leaf_remote_config(link, leaf_port(home_server), certificates["ca"]))
    try:
        control = await connect(home_server, home, "control")
        agent = await connect(office_server, office, "office-pc")

        async def run(msg) -> None:
            await msg.respond(b"done: " + msg.data)

        await agent.subscribe(p.subject(p.ASSIGN, node="office-pc"), cb=run)
        await agent.flush()
        async with asyncio.timeout(WAIT_S):  # until the leaf link is up and has the interest
            while True:
                try:
                    reply = await control.request(p.subject(p.ASSIGN, node="office-pc"), b"task-1", timeout=1)
                    break
                except nats.errors.NoRespondersError:
                    await asyncio.sleep(0.05)
                except nats.errors.TimeoutError:
                    continue
        assert reply.data == b"done: task-1"
        await control.close()
        await agent.close()
    finally:
        office_server.stop()
        home_server.stop()


async def test_leaf_that_does_not_trust_the_hub_never_links(tmp_path, certificates):
    link = LeafLink("office-link", new_secret())
    home, home_server = site(tmp_path / "home", {}, hub_leaf_config(
        link, certificates["cert"], certificates["key"], host="127.0.0.1", port=-1))
    office, office_server = site(tmp_path / "office", {"office-pc": "agent"}, leaf_remote_config(
        link, leaf_port(home_server), certificates["stranger"]))
    try:
        agent = await connect(office_server, office, "office-pc")
        await agent.subscribe(p.subject(p.ASSIGN, node="office-pc"), cb=None)
        await agent.flush()
        async with asyncio.timeout(WAIT_S):  # the hub sees the handshake fail
            while "TLS Handshake Failure" not in "".join(home_server.log):
                await asyncio.sleep(0.05)
        control = await connect(home_server, home, "control")
        with pytest.raises(nats.errors.NoRespondersError):  # nothing crosses to the office
            await control.request(p.subject(p.ASSIGN, node="office-pc"), b"task-1", timeout=WAIT_S)
        await control.close()
        await agent.close()
    finally:
        office_server.stop()
        home_server.stop()
