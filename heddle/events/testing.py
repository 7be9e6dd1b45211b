"""Public test helpers for code built on heddle.events: factories and fake aggregates.

The fakes are not registered; register them in a test (under registry isolation) with
``register_aggregate("FakeInterval")(FakeIntervalAggregate)``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from heddle.events.aggregate import IntervalAggregate, RootAggregate, child_membership
from heddle.events.envelopes import CommandMessage, EventEnvelope, Metadata
from heddle.events.errors import CommandRejected

__all__ = [
    "FakeIntervalAggregate",
    "FakeRootAggregate",
    "make_command",
    "make_event",
    "wait_until",
]

DEFAULT_TEST_ISSUER = "user:system:test"
"""Issuer used by the factories unless a test says otherwise."""


def make_event(
    event_type: str = "Recorded",
    *,
    aggregate_type: str = "FakeInterval",
    aggregate_id: str = "agg-1",
    aggregate_version: int = 1,
    payload: Mapping[str, Any] | None = None,
    issued_by: str = DEFAULT_TEST_ISSUER,
    command_id: str | None = None,
    correlation_id: str | None = None,
    event_id: str | None = None,
) -> EventEnvelope:
    """A validated EventEnvelope with sensible defaults."""
    return EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        payload=dict(payload or {}),
        metadata=Metadata(
            issued_by=issued_by, command_id=command_id, correlation_id=correlation_id
        ),
        occurred_at_unix_s=time.time(),
    )


def make_command(
    command_type: str = "Record",
    *,
    aggregate_type: str = "FakeInterval",
    aggregate_id: str = "agg-1",
    payload: Mapping[str, Any] | None = None,
    issued_by: str = DEFAULT_TEST_ISSUER,
    command_id: str | None = None,
    correlation_id: str | None = None,
    expected_aggregate_version: int | None = None,
) -> CommandMessage:
    """A validated CommandMessage; a fresh command_id unless one is given."""
    return CommandMessage(
        command_id=command_id or str(uuid.uuid4()),
        command_type=command_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=dict(payload or {}),
        metadata=Metadata(issued_by=issued_by, correlation_id=correlation_id),
        expected_aggregate_version=expected_aggregate_version,
        issued_at_unix_s=time.time(),
    )


async def wait_until(
    predicate: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.01
) -> None:
    """Wait for ``predicate()`` (plain or awaitable result) to become true, or raise
    TimeoutError after ``timeout_s``.

    For conditions with no event to await (a key expiring on a server): poll, bounded.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


class FakeIntervalAggregate(IntervalAggregate):
    """Records values. Commands: Record{value}, Refuse{reason} (always rejected),
    Explode (accepted, but its event's apply raises)."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.values: list[Any] = []

    def handle_record(self, payload: Mapping[str, Any], metadata: Metadata) -> tuple[str, dict]:
        self.ensure_open()
        return "Recorded", {"value": payload.get("value")}

    def handle_refuse(self, payload: Mapping[str, Any], metadata: Metadata) -> tuple[str, dict]:
        raise CommandRejected(str(payload.get("reason", "REFUSED")), "FakeIntervalAggregate")

    def handle_explode(self, payload: Mapping[str, Any], metadata: Metadata) -> tuple[str, dict]:
        return "Exploded", {}

    def apply_recorded(self, payload: Mapping[str, Any], metadata: Metadata) -> None:
        self.values.append(payload.get("value"))

    def apply_exploded(self, payload: Mapping[str, Any], metadata: Metadata) -> None:
        self.values.append("partial")  # mutates, then fails: the version must not move
        raise RuntimeError("apply_exploded always fails")


class FakeRootAggregate(RootAggregate):
    """A root whose AddChild{child_type, child_id} command registers a child."""

    def handle_add_child(self, payload: Mapping[str, Any], metadata: Metadata) -> tuple[str, dict]:
        self.ensure_open()
        return "ChildAdded", {
            "_child_membership": child_membership(
                str(payload["child_type"]), str(payload["child_id"])
            )
        }

    def handle_record(self, payload: Mapping[str, Any], metadata: Metadata) -> tuple[str, dict]:
        self.ensure_open()
        return "Recorded", {"value": payload.get("value")}

    def apply_child_added(self, payload: Mapping[str, Any], metadata: Metadata) -> None:
        """Membership is recorded by RootAggregate itself."""

    def apply_recorded(self, payload: Mapping[str, Any], metadata: Metadata) -> None:
        """Nothing to keep."""
