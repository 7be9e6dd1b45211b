"""How processes on a machine get their credentials: `heddle up`'s own members are reused
across restarts (and replaced once revoked); an agent uses what it stored, refuses to pose
as another node id, and needs no code for a nats-server without access control."""

from __future__ import annotations

import os
import stat

import pytest

from heddle.live.cluster.join import Credentials, JoinError
from heddle.live.cluster.membership import local_member, node_credentials
from heddle.live.cluster.roster import Roster
from heddle.live.cluster.tls import client_context, make_certificate
from heddle.live.up import Cluster, UpError


def never(*_):
    raise AssertionError("must not be asked")


def test_up_reuses_its_members_until_one_is_revoked(tmp_path):
    roster = Roster.load(tmp_path)
    first = local_member(roster, tmp_path, "studio", "agent", "credentials.json", "nats://127.0.0.1:1")
    again = local_member(Roster.load(tmp_path), tmp_path, "studio", "agent", "credentials.json",
                         "nats://127.0.0.1:2")
    assert again.password == first.password and again.nats_url == "nats://127.0.0.1:2"
    assert Credentials.load(tmp_path) == again
    assert stat.S_IMODE(os.stat(tmp_path / "credentials.json").st_mode) == 0o600

    roster = Roster.load(tmp_path)
    roster.revoke("studio")
    roster.save()
    renewed = local_member(roster, tmp_path, "studio", "agent", "credentials.json", "nats://127.0.0.1:2")
    assert renewed.password != first.password
    assert Roster.load(tmp_path).members["studio"].password == renewed.password


def test_an_agent_uses_its_stored_credentials_and_only_as_its_own_node(tmp_path):
    stored = Credentials(nats_url="nats://10.0.0.2:4222", user="laptop", password="x" * 32)
    stored.save(tmp_path)
    found = node_credentials(tmp_path, nats_url=None, node_id=None, code=None, find=never, ask_code=never)
    assert found == stored
    moved = node_credentials(tmp_path, nats_url="nats://10.0.0.9:4222", node_id="laptop", code=None,
                             find=never, ask_code=never)
    assert moved.nats_url == "nats://10.0.0.9:4222" and moved.password == stored.password
    with pytest.raises(JoinError, match="joined as node 'laptop', not 'desk'"):
        node_credentials(tmp_path, nats_url=None, node_id="desk", code=None, find=never, ask_code=never)


def test_a_server_without_access_control_needs_no_code(natsd, tmp_path):
    assert node_credentials(tmp_path, nats_url=natsd.url, node_id="n1", code=None, find=never,
                            ask_code=never) is None
    assert not (tmp_path / "credentials.json").exists()


def test_tls_is_the_clusters_choice_at_its_first_start(tmp_path):
    roster = Roster.load(tmp_path)
    cert, _ = make_certificate(roster.tls_dir, "home")
    client_context(cert.read_text())  # a certificate a client can pin
    with pytest.raises(UpError, match="uses TLS.*cannot run without"):
        Cluster(tmp_path, "127.0.0.1", 0, tls=False)._certificate()
