"""Fixtures for tests/events: a real nats-server per session, connections, fake aggregates."""

from __future__ import annotations

import uuid

import nats
import pytest

from heddle.events import sli
from heddle.events.event_log import InMemoryEventLog
from heddle.events.jetstream_log import JetStreamEventLog
from heddle.events.natsd import NatsServer, start_nats_server
from heddle.events.registry import register_aggregate
from heddle.events.testing import FakeIntervalAggregate, FakeRootAggregate


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory) -> NatsServer:
    server = start_nats_server(tmp_path_factory.mktemp("nats-js"))
    yield server
    server.stop()


@pytest.fixture
async def nc(nats_server):
    conn = await nats.connect(nats_server.url, connect_timeout=5, allow_reconnect=False)
    yield conn
    await conn.close()


@pytest.fixture
async def connect(nats_server):
    """Factory for extra connections (other 'processes'); all closed at teardown."""
    opened = []

    async def _connect(**kwargs):
        kwargs.setdefault("connect_timeout", 5)
        kwargs.setdefault("allow_reconnect", False)
        conn = await nats.connect(nats_server.url, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        if not conn.is_closed:
            await conn.close()


@pytest.fixture(params=["memory", "jetstream"])
async def logs(request, connect):
    """A factory of event logs sharing one backend: each call is another 'process'."""
    if request.param == "memory":
        shared = InMemoryEventLog()

        async def new_log():
            return shared

        yield new_log
    else:

        async def new_log():
            return JetStreamEventLog((await connect()).jetstream())

        yield new_log


@pytest.fixture
def uid() -> str:
    """A fresh id so tests sharing the session server never share an aggregate."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def fake_types(registry_isolation):
    """Register the public fakes as FakeInterval / FakeRoot for one test."""
    register_aggregate("FakeInterval")(FakeIntervalAggregate)
    register_aggregate("FakeRoot")(FakeRootAggregate)
    return FakeIntervalAggregate, FakeRootAggregate


@pytest.fixture
def recorder():
    """A CapturingRecorder installed for one test (the previous recorder restored after)."""
    capturing = sli.CapturingRecorder()
    previous = sli.install_recorder(capturing)
    yield capturing
    sli.install_recorder(previous)
