"""Aggregate base classes and the apply() discipline.

apply() is the only path that mutates an aggregate. It is deterministic, does no I/O, and
checks, in this order: provenance, version monotonicity (before dispatch, so a bad envelope
never leaves a half-mutated aggregate), dispatch to ``apply_<event_type_snake>``, then commit
the version. The dedup ring of processed command ids is snapshot-only: replaying events never
rebuilds it (v7 §4.5).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from typing import Any, ClassVar

from heddle.events.envelopes import EventEnvelope, Metadata
from heddle.events.errors import (
    AggregateInvariantError,
    CommandRejected,
    CorruptAggregateAlert,
    SnapshotError,
    UnknownEventVersionError,
)
from heddle.events.issuer_conventions import FRAMEWORK_PREFIX, is_framework_issuer

__all__ = [
    "CHILD_MEMBERSHIP_KEY",
    "DEDUP_RING_SIZE",
    "DEFAULT_HORIZON_TIMEOUT_SECONDS",
    "FRAMEWORK_ONLY_EVENT_TYPES",
    "INTERNAL_FINALIZE",
    "INTERNAL_FINALIZED",
    "Aggregate",
    "IntervalAggregate",
    "Phase",
    "RootAggregate",
    "child_membership",
    "iter_child_membership",
    "snake_case",
]

INTERNAL_FINALIZED = "InternalFinalized"
"""The framework's terminal event for interval aggregates."""
INTERNAL_FINALIZE = "InternalFinalize"
"""The command P2/P3 send to finalize an interval aggregate."""
FRAMEWORK_ONLY_EVENT_TYPES: frozenset[str] = frozenset({INTERNAL_FINALIZED})
"""Event types whose issued_by must start with ``framework:`` (seed, provenance rule)."""
DEDUP_RING_SIZE = 512
"""Processed command ids kept per aggregate (the seed's snapshot-only N=512 ring)."""
DEFAULT_HORIZON_TIMEOUT_SECONDS = 24 * 3600.0
"""P3 finalizes an interval aggregate this long after its last event (seed default: 24 h)."""
CHILD_MEMBERSHIP_KEY = "_child_membership"
"""Reserved payload key on root events naming children: P1 and RootAggregate read it."""

_SNAKE_RE = re.compile(r"(?<!^)(?=[A-Z])")
_SNAKE_CACHE: dict[str, str] = {}


def snake_case(name: str) -> str:
    """``TaskPlaced`` -> ``task_placed`` (cached: it runs once per event on the hot path)."""
    cached = _SNAKE_CACHE.get(name)
    if cached is None:
        cached = _SNAKE_RE.sub("_", name).lower()
        _SNAKE_CACHE[name] = cached
    return cached


_APPLY_NAMES: dict[str, str] = {}


def _apply_name(event_type: str) -> str:
    name = _APPLY_NAMES.get(event_type)
    if name is None:
        name = _APPLY_NAMES[event_type] = "apply_" + snake_case(event_type)
    return name


class Aggregate:
    """Identity, monotonic version, the dedup ring and the apply() discipline.

    Subclasses define ``apply_<event>(payload, metadata)`` to mutate state and
    ``handle_<command>(payload, metadata) -> (event_type, payload)`` to decide; handlers
    must not mutate state (only apply does).
    """

    aggregate_type: ClassVar[str] = ""
    FRAMEWORK_STATE_EVENT_TYPES: ClassVar[tuple[str, ...]] = ()
    """Framework-only event types whose effects this class keeps in its state: a restored
    snapshot is checked against the first event of each type in the log
    (``framework_state_conflict``) before it is trusted."""
    _apply_table: ClassVar[dict[str, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._apply_table = {}  # per class: event_type -> apply_* function, filled lazily

    def __init__(self, aggregate_id: str) -> None:
        self.aggregate_id = aggregate_id
        self.aggregate_version = 0
        self.last_event_id: str | None = None
        """Id of the event that brought the aggregate to ``aggregate_version``."""
        self.events_since_snapshot = 0
        """Events this instance applied since it was last snapshotted or restored (the
        CommandHandler's count-based snapshot trigger; not part of any snapshot)."""
        self._processed: deque[str] = deque(maxlen=DEDUP_RING_SIZE)
        self._processed_set: set[str] = set()

    # -- the apply() discipline -------------------------------------------------------------
    def apply(self, envelope: EventEnvelope) -> None:
        """Apply one event; raises CorruptAggregateAlert, AggregateInvariantError or
        UnknownEventVersionError and then leaves the version untouched."""
        event_type = envelope.event_type
        # 1. Provenance: the in-process backstop behind the NATS publish ACL.
        if event_type in FRAMEWORK_ONLY_EVENT_TYPES and not envelope.metadata.issued_by.startswith(
            FRAMEWORK_PREFIX
        ):
            raise CorruptAggregateAlert(
                f"{event_type} on {self.aggregate_type}/{self.aggregate_id} issued by "
                f"{envelope.metadata.issued_by!r}: only framework:* may issue it"
            )
        # 2. Version monotonicity, before any handler runs.
        if envelope.aggregate_version != self.aggregate_version + 1:
            raise AggregateInvariantError(
                f"{self.aggregate_type}/{self.aggregate_id} is at version "
                f"{self.aggregate_version}; event {envelope.event_id} has version "
                f"{envelope.aggregate_version} (expected {self.aggregate_version + 1})"
            )
        if envelope.aggregate_id != self.aggregate_id:
            raise AggregateInvariantError(
                f"event {envelope.event_id} is for aggregate {envelope.aggregate_id!r}, "
                f"not {self.aggregate_id!r}"
            )
        # 3. Dispatch.
        handler = self._apply_table.get(event_type)
        if handler is None:
            handler = getattr(type(self), _apply_name(event_type), None)
            if handler is None:
                raise UnknownEventVersionError(
                    f"{type(self).__name__} has no {_apply_name(event_type)}(): event type "
                    f"{event_type!r} was written by a newer heddle"
                )
            self._apply_table[event_type] = handler
        try:
            handler(self, envelope.payload, envelope.metadata)
            self._after_apply(envelope)
        except (AggregateInvariantError, CorruptAggregateAlert):
            raise
        except Exception as exc:
            raise AggregateInvariantError(
                f"{type(self).__name__}.{_apply_name(event_type)} failed on event "
                f"{envelope.event_id} (version {envelope.aggregate_version}): {exc}"
            ) from exc
        # 4. Commit, only after the handler returned cleanly.
        self.aggregate_version = envelope.aggregate_version
        self.last_event_id = envelope.event_id

    def _after_apply(self, envelope: EventEnvelope) -> None:
        """Framework bookkeeping common to every event of a base class (phase, children)."""

    # -- snapshot-only dedup ring -----------------------------------------------------------
    def has_processed(self, command_id: str) -> bool:
        """True if this instance (or its snapshot) recorded ``command_id`` as handled."""
        return command_id in self._processed_set

    def mark_processed(self, command_id: str) -> None:
        """Record a handled command; the oldest of DEDUP_RING_SIZE ids falls out."""
        if command_id in self._processed_set:
            return
        if len(self._processed) == DEDUP_RING_SIZE:
            self._processed_set.discard(self._processed[0])
        self._processed.append(command_id)
        self._processed_set.add(command_id)

    @property
    def processed_command_ids(self) -> tuple[str, ...]:
        """The dedup ring, oldest first."""
        return tuple(self._processed)

    # -- snapshots --------------------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        """Domain state as JSON-able data; default: public attributes. Override for sets etc."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.startswith("_") and key not in _FRAMEWORK_ATTRIBUTES
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of snapshot_state(). A key snapshot_state() never writes (private or
        framework attributes such as the version) is refused, so a crafted snapshot
        cannot reach them (ValueError, reported by from_snapshot as SnapshotError)."""
        for key, value in state.items():
            if key.startswith("_") or key in _FRAMEWORK_ATTRIBUTES:
                raise ValueError(f"snapshot state may not set {key!r}")
            setattr(self, key, value)

    def to_snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild this instance, dedup ring included, and the id of
        the last event it covers (what a loader checks the log against)."""
        return {
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "last_event_id": self.last_event_id,
            "processed": list(self._processed),
            "state": self.snapshot_state(),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Aggregate:
        """Rebuild an instance from to_snapshot() output (dedup ring restored)."""
        try:
            if data["aggregate_type"] != cls.aggregate_type:
                raise SnapshotError(
                    f"snapshot is for type {data['aggregate_type']!r}, not {cls.aggregate_type!r}"
                )
            instance = cls(data["aggregate_id"])
            instance.restore_state(data["state"])
            instance.aggregate_version = int(data["aggregate_version"])
            instance.last_event_id = data.get("last_event_id")  # None in older snapshots: untrusted
            for command_id in data["processed"]:
                instance.mark_processed(command_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed {cls.__name__} snapshot: {exc!r}") from exc
        return instance

    def framework_state_conflict(self, first_events: Mapping[str, EventEnvelope | None]) -> str:
        """Why this (restored) state disagrees with the log's first event of each type in
        FRAMEWORK_STATE_EVENT_TYPES (None where the log has none), or "" if it agrees.
        Default: nothing to check."""
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.aggregate_id} v{self.aggregate_version}>"


_FRAMEWORK_ATTRIBUTES = frozenset(
    {"aggregate_id", "aggregate_version", "last_event_id", "events_since_snapshot"}
)
"""Attributes every aggregate has that are not domain state (to_snapshot carries the ones
a snapshot needs itself)."""


class Phase(StrEnum):
    """Life of an interval aggregate."""

    CREATED = "created"
    ACTIVE = "active"
    FINALIZED = "finalized"


class IntervalAggregate(Aggregate):
    """An aggregate with a bounded life: created -> active -> finalized.

    Any event other than InternalFinalized activates it; InternalFinalized (framework only)
    finalizes it, and a second one is a no-op.
    """

    HORIZON_TIMEOUT_SECONDS: ClassVar[float] = DEFAULT_HORIZON_TIMEOUT_SECONDS
    FRAMEWORK_STATE_EVENT_TYPES: ClassVar[tuple[str, ...]] = (INTERNAL_FINALIZED,)

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.phase = Phase.CREATED
        self.finalized_by: str | None = None
        self.finalize_reason: str | None = None

    @property
    def is_finalized(self) -> bool:
        return self.phase is Phase.FINALIZED

    def ensure_open(self) -> None:
        """Raise CommandRejected(ALREADY_FINALIZED) from a handle_* method if finalized."""
        if self.phase is Phase.FINALIZED:
            raise CommandRejected("ALREADY_FINALIZED", f"{self.aggregate_type}/{self.aggregate_id}")

    def _after_apply(self, envelope: EventEnvelope) -> None:
        if self.phase is Phase.CREATED and envelope.event_type != INTERNAL_FINALIZED:
            self.phase = Phase.ACTIVE

    def handle_internal_finalize(
        self, payload: Mapping[str, Any], metadata: Metadata
    ) -> tuple[str, dict[str, Any]]:
        if not is_framework_issuer(metadata.issued_by):
            raise CommandRejected("FORBIDDEN_ISSUER", f"{metadata.issued_by!r} is not framework:*")
        self.ensure_open()
        return INTERNAL_FINALIZED, {"reason": str(payload.get("reason", ""))}

    def apply_internal_finalized(self, payload: Mapping[str, Any], metadata: Metadata) -> None:
        if self.phase is Phase.FINALIZED:
            return  # receiver-side idempotence: a duplicate finalization changes nothing
        self.phase = Phase.FINALIZED
        self.finalized_by = metadata.issued_by
        self.finalize_reason = str(payload.get("reason", ""))

    def snapshot_state(self) -> dict[str, Any]:
        state = super().snapshot_state()
        state["phase"] = self.phase.value
        return state

    def framework_state_conflict(self, first_events: Mapping[str, EventEnvelope | None]) -> str:
        """A finalized state must rest on the log's first InternalFinalized (at or before
        this version, framework-issued, same issuer and reason); an open state must not
        hide one. Only apply_internal_finalized sets these fields, and apply() checks its
        provenance: a snapshot must not be a way around that."""
        first = first_events.get(INTERNAL_FINALIZED)
        if first is not None and first.aggregate_version > self.aggregate_version:
            first = None  # finalized after the snapshot: the replay of newer events applies it
        where = f"{self.aggregate_type}/{self.aggregate_id} at version {self.aggregate_version}"
        if self.phase is not Phase.FINALIZED:
            if first is not None:
                return (
                    f"{where} is {self.phase.value} in the snapshot, but the log finalized it "
                    f"at version {first.aggregate_version}"
                )
            return ""
        if first is None:
            return (
                f"{where} is finalized by {self.finalized_by!r} in the snapshot, but the log "
                "has no InternalFinalized up to that version"
            )
        issuer = first.metadata.issued_by
        if not is_framework_issuer(issuer) or issuer != self.finalized_by:
            return (
                f"{where}: the snapshot says finalized by {self.finalized_by!r}, the log's "
                f"InternalFinalized (version {first.aggregate_version}) was issued by {issuer!r}"
            )
        if self.finalize_reason != str(first.payload.get("reason", "")):
            return (
                f"{where}: the snapshot's finalize reason {self.finalize_reason!r} is not the "
                f"log's {first.payload.get('reason', '')!r}"
            )
        return ""

    def restore_state(self, state: Mapping[str, Any]) -> None:
        super().restore_state(state)
        self.phase = Phase(state["phase"])


def child_membership(child_type: str, child_id: str, *, remove: bool = False) -> dict[str, str]:
    """One entry for a root event's ``_child_membership`` payload key."""
    return {"child_type": child_type, "child_id": child_id, "op": "remove" if remove else "add"}


def iter_child_membership(payload: Mapping[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """Yield (child_type, child_id, is_add) from a payload's ``_child_membership`` entry,
    which is one entry or a list of them."""
    raw = payload.get(CHILD_MEMBERSHIP_KEY)
    if raw is None:
        return
    entries = raw if isinstance(raw, list) else [raw]
    for entry in entries:
        if not isinstance(entry, Mapping) or "child_type" not in entry or "child_id" not in entry:
            raise ValueError(
                f"{CHILD_MEMBERSHIP_KEY} entries need child_type and child_id, got {entry!r}"
            )
        yield str(entry["child_type"]), str(entry["child_id"]), entry.get("op", "add") != "remove"


class RootAggregate(IntervalAggregate):
    """An interval aggregate that owns children (e.g. Job owns Tasks); P2 cascades its
    finalization to them."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.children: dict[str, set[str]] = {}

    def _after_apply(self, envelope: EventEnvelope) -> None:
        super()._after_apply(envelope)
        for child_type, child_id, is_add in iter_child_membership(envelope.payload):
            if is_add:
                self.children.setdefault(child_type, set()).add(child_id)
            else:
                self.children.get(child_type, set()).discard(child_id)

    def snapshot_state(self) -> dict[str, Any]:
        state = super().snapshot_state()
        state["children"] = {kind: sorted(ids) for kind, ids in self.children.items()}
        return state

    def restore_state(self, state: Mapping[str, Any]) -> None:
        super().restore_state(state)
        self.children = {kind: set(ids) for kind, ids in state["children"].items()}
