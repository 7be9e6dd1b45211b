"""heddle's shared pytest fixtures for the events runtime (star-imported by conftest.py).

Imports are inside the fixtures so collecting the suite costs nothing for tests that do
not use them.
"""

from __future__ import annotations

import pytest

__all__ = [
    "command_handler",
    "in_memory_event_log",
    "in_memory_rejection_log",
    "membership_projector",
    "registry_isolation",
    "wired_dispatcher",
]


@pytest.fixture
def registry_isolation():
    """Snapshot AGGREGATE_REGISTRY and restore it afterwards (for tests that register)."""
    from heddle.events.registry import AGGREGATE_REGISTRY

    saved = dict(AGGREGATE_REGISTRY)
    yield AGGREGATE_REGISTRY
    AGGREGATE_REGISTRY.clear()
    AGGREGATE_REGISTRY.update(saved)


@pytest.fixture
def in_memory_event_log():
    from heddle.events.event_log import InMemoryEventLog

    return InMemoryEventLog()


@pytest.fixture
def in_memory_rejection_log():
    from heddle.events.event_log import InMemoryRejectionLog

    return InMemoryRejectionLog()


@pytest.fixture
def command_handler(in_memory_event_log, in_memory_rejection_log):
    """A CommandHandler over the in-memory logs with the default cache (1024) and no KV."""
    from heddle.events.command_handler import CommandHandler

    return CommandHandler(in_memory_event_log, in_memory_rejection_log)


@pytest.fixture
def membership_projector():
    from heddle.events.projectors import ScopeMembershipProjector

    return ScopeMembershipProjector()


@pytest.fixture
async def wired_dispatcher(in_memory_event_log, membership_projector, command_handler):
    """An EventDispatcher with P1 then P2 registered (not started: call start(type))."""
    from heddle.events.dispatcher import EventDispatcher
    from heddle.events.projectors import CascadeProjector

    dispatcher = EventDispatcher(in_memory_event_log)
    dispatcher.register(membership_projector)
    dispatcher.register(CascadeProjector(membership_projector, command_handler))
    yield dispatcher
    await dispatcher.stop()
