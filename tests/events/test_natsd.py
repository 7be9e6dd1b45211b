"""Starting nats-server for tests, benchmarks and `heddle up` (one start-up path for both)."""

from __future__ import annotations

import socket

import pytest

from heddle.events.natsd import NatsStartError, start_nats_server
from heddle.live.natsd import EmbeddedNats


def test_a_server_starts_on_a_port_it_picked_and_restarts_on_it(tmp_path):
    server = EmbeddedNats(tmp_path / "js").start()
    try:
        port = server.port
        assert port > 0 and any("Server is ready" in line for line in server.log)
        server.stop()
        assert not server.running()
        server.start()
        assert server.port == port and server.running()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        server.stop()


@pytest.mark.parametrize("start", [
    lambda store, conf: start_nats_server(store, config_file=conf),
    lambda store, conf: EmbeddedNats(store, config_file=conf).start(),
])
def test_a_server_that_cannot_start_says_why(tmp_path, start):
    bad = tmp_path / "bad.conf"
    bad.write_text("this is { not a config\n")
    with pytest.raises(NatsStartError, match=r"(?s)nats-server exited.*Parse error on line 1"):
        start(tmp_path / "js", bad)
