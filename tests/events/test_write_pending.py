"""write_pending: what a connection has buffered reaches the server at once, not when nats-py's
flusher task next runs; publish_now: a message published without awaiting, written at once
behind what was buffered before it. The subscriber reads the server on a plain blocking socket, outside
this process's event loop, which does not turn between the publish and the read: only a
message already on the wire can arrive."""

from __future__ import annotations

import socket

from heddle.events.jetstream_acks import publish_now, write_pending

WAIT_S = 30.0


def raw_subscriber(port: int, subject: str) -> socket.socket:
    """A NATS client speaking the text protocol on a blocking socket, subscribed to ``subject``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    read_until(sock, b"\r\n")  # INFO
    sock.sendall(f'CONNECT {{"verbose":false}}\r\nSUB {subject} 1\r\nPING\r\n'.encode())
    read_until(sock, b"PONG\r\n")  # the server has the subscription
    return sock


def read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while end not in data:
        part = sock.recv(65536)  # the socket's timeout bounds each wait
        assert part, f"the server closed the connection; read so far: {data!r}"
        data += part
    return data


async def test_a_buffered_message_is_on_the_wire_before_the_loop_turns(nc, nats_server):
    sock = raw_subscriber(nats_server.port, "write.now")
    try:
        await nc.publish("write.now", b"first-token")  # buffered: the flusher writes it next turn
        write_pending(nc)
        # no await from here on: the flusher cannot run, the message must already be written
        assert b"first-token" in read_until(sock, b"first-token\r\n")
        assert nc._pending == [] and nc._pending_data_size == 0  # nothing left to write twice
    finally:
        sock.close()


async def test_a_message_published_now_follows_what_was_buffered_before_it(nc, nats_server):
    sock = raw_subscriber(nats_server.port, "write.order")
    try:
        await nc.publish("write.order", b"piece-0")  # buffered
        assert publish_now(nc, "write.order", b"piece-1", write=False)
        assert publish_now(nc, "write.order", b"piece-2")  # and everything before it written now
        data = read_until(sock, b"piece-2\r\n")
        assert data.index(b"piece-0") < data.index(b"piece-1") < data.index(b"piece-2")
    finally:
        sock.close()


async def test_nothing_is_written_or_published_now_while_the_connection_is_not_up(nc):
    await nc.close()
    write_pending(nc)  # a no-op: nats-py keeps its buffer for a reconnect
    assert not publish_now(nc, "write.closed", b"x")  # the caller publishes the usual way
