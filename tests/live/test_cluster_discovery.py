"""Discovery with real zeroconf on loopback: a cluster announced in this process is listed by
`heddle clusters` in another, and `heddle join CODE` with no URL finds it and joins; with
several clusters it joins the one `--cluster` names, and never guesses."""

from __future__ import annotations

import time
import uuid

import nats
import pytest

from heddle.events.natsd import start_nats_server
from heddle.live.cluster.discovery import Announcer, DiscoveredCluster, DiscoveryError, choose
from heddle.live.cluster.join import Credentials, serve_joins
from heddle.live.cluster.roster import Roster
from tests.live.cluster_cli import WAIT_S, heddle


@pytest.fixture
def announced(tmp_path):
    """A real cluster (nats-server with the roster's config) and a decoy, both announced."""
    roster = Roster.load(tmp_path / "cluster-side")
    server = start_nats_server(tmp_path / "js", config_file=roster.config_file)
    name = f"home-{uuid.uuid4().hex[:8]}"
    clusters = [DiscoveredCluster(name, (server.url,), "1.0", roster.fingerprint),
                DiscoveredCluster(f"office-{name[5:]}", ("nats://127.0.0.1:9",), "1.0", "00:00")]
    announcers = [Announcer(c, "127.0.0.1", server.port).start() for c in clusters]
    yield roster, server, clusters
    for announcer in announcers:
        announcer.close()
    server.stop()


async def test_discover_and_join_with_no_url(announced, tmp_path):
    roster, server, (home, office) = announced
    control = await nats.connect(server.url, user="control", password=roster.control.password)
    await serve_joins(control, roster, server.url)

    # Both answer within ~1 s on a quiet machine: `heddle clusters` listens 2 s and is asked
    # again until it lists both (listening 8 s once cost every run 8 s)
    deadline = time.monotonic() + WAIT_S
    while True:
        code, output = await heddle("clusters", "--wait", "2")
        assert code == 0, output
        if (home.name in output and office.name in output) or time.monotonic() > deadline:
            break
    assert home.name in output and server.url in output and roster.fingerprint in output
    assert office.name in output

    code, output = await heddle("join", roster.join_code, "--cluster", home.name, "--node-id", "laptop",
                                "--data-dir", str(tmp_path / "laptop"))
    assert code == 0, output
    assert f"found cluster {home.name}" in output
    credentials = Credentials.load(tmp_path / "laptop")
    assert credentials.nats_url == server.url and credentials.password not in output
    laptop = await nats.connect(**credentials.connect_options(), allow_reconnect=False)
    await laptop.close()
    await control.close()


def test_choose_names_what_it_found():
    a = DiscoveredCluster("home", ("nats://h:4222",), "1.0", "aa")
    b = DiscoveredCluster("office", ("nats://o:4222",), "1.0", "bb")
    assert choose([a], None) == a
    assert choose([a, b], None, ask=lambda found: "office") == b
    with pytest.raises(DiscoveryError, match="no cluster 'cabin'.*home, office"):
        choose([a, b], "cabin")
    with pytest.raises(DiscoveryError, match="several clusters found.*--cluster"):
        choose([a, b], None)  # no terminal to ask on: refuse to guess
    with pytest.raises(DiscoveryError, match="no heddle cluster answered"):
        choose([], None)
