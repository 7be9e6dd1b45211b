"""Wire envelopes: events, commands and rejections, validated at the boundary.

These pydantic models are what crosses NATS and what ``schemas/v1/*.schema.json`` describes.
Identifiers are restricted to characters that are safe both as NATS subject tokens and as
NATS KV key segments, so a bad id is refused here with the field named, not deep in NATS.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from heddle.events.issuer_conventions import is_recognized_issuer

__all__ = [
    "AGGREGATE_ID_PATTERN",
    "AGGREGATE_TYPE_PATTERN",
    "MESSAGE_TYPE_PATTERN",
    "SCHEMA_VERSION",
    "CommandMessage",
    "EventEnvelope",
    "Metadata",
    "RejectionEnvelope",
    "trusted_event",
    "trusted_metadata",
]

SCHEMA_VERSION = 1
"""Version of the envelope schemas; the exported files live under ``schemas/v1/``."""

AGGREGATE_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
"""Aggregate type names: one NATS subject token, usable inside a stream name."""
AGGREGATE_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
"""Aggregate ids: no '.', ':', '*', '>' or spaces (subject tokens and KV key segments)."""
MESSAGE_TYPE_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
"""Event and command types are PascalCase (``TaskPlaced``), mapped to snake_case handlers."""

_CONFIG = ConfigDict(extra="forbid", frozen=True)


class Metadata(BaseModel):
    """Who issued a message and how it relates to others (trace continuity)."""

    model_config = _CONFIG

    issued_by: str = Field(description="Issuer with a reserved prefix, e.g. 'framework:cascade'.")
    command_id: str | None = Field(default=None, description="Command that caused the event.")
    correlation_id: str | None = Field(default=None, description="Id shared by a whole flow.")

    @field_validator("issued_by")
    @classmethod
    def _recognized(cls, value: str) -> str:
        if not is_recognized_issuer(value):
            raise ValueError(
                "expected a reserved prefix (framework:, observer:, projector:, user:badge:, "
                f"user:system:, bridge:) followed by a name, got {value!r}"
            )
        return value


class EventEnvelope(BaseModel):
    """One immutable event in an aggregate's history."""

    model_config = _CONFIG

    event_id: str = Field(min_length=1)
    event_type: str = Field(pattern=MESSAGE_TYPE_PATTERN)
    aggregate_type: str = Field(pattern=AGGREGATE_TYPE_PATTERN)
    aggregate_id: str = Field(pattern=AGGREGATE_ID_PATTERN)
    aggregate_version: int = Field(ge=1, description="Position in the aggregate's history.")
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: Metadata
    occurred_at_unix_s: float = Field(ge=0.0, description="Wall-clock time of the append.")
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)


class CommandMessage(BaseModel):
    """A request to change one aggregate; handled by CommandHandler.handle()."""

    model_config = _CONFIG

    command_id: str = Field(min_length=1, description="Idempotency key of the command.")
    command_type: str = Field(pattern=MESSAGE_TYPE_PATTERN)
    aggregate_type: str = Field(pattern=AGGREGATE_TYPE_PATTERN)
    aggregate_id: str = Field(pattern=AGGREGATE_ID_PATTERN)
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: Metadata
    expected_aggregate_version: int | None = Field(
        default=None, ge=0, description="None skips the optimistic-concurrency check."
    )
    issued_at_unix_s: float = Field(default=0.0, ge=0.0)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)


class RejectionEnvelope(BaseModel):
    """Audit record of a command a handler refused (CommandRejected)."""

    model_config = _CONFIG

    rejection_id: str = Field(min_length=1)
    command_id: str = Field(min_length=1)
    command_type: str = Field(pattern=MESSAGE_TYPE_PATTERN)
    aggregate_type: str = Field(pattern=AGGREGATE_TYPE_PATTERN)
    aggregate_id: str = Field(pattern=AGGREGATE_ID_PATTERN)
    aggregate_version: int = Field(ge=0, description="Aggregate version when it refused.")
    reason: str = Field(min_length=1, description="Machine-readable, e.g. ALREADY_FINALIZED.")
    detail: str = ""
    metadata: Metadata
    rejected_at_unix_s: float = Field(ge=0.0)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)


_object_setattr = object.__setattr__
_object_new = object.__new__
_EVENT_FIELDS = frozenset(EventEnvelope.model_fields)
_METADATA_FIELDS = frozenset(Metadata.model_fields)

# The two constructors below do what model_construct() does for a model without aliases,
# private attributes or post-init hooks, minus its per-field Python loop and its keyword
# plumbing: the CommandHandler builds one of each per command, and the in-memory event log
# one of each per event it replays. They are spelled out (not shared) because the extra call
# layer cost more than everything else in them.


def trusted_metadata(
    issued_by: str, command_id: str | None, correlation_id: str | None
) -> Metadata:
    """Metadata from already-validated parts, without validation (hot path only)."""
    instance = _object_new(Metadata)
    _object_setattr(
        instance,
        "__dict__",
        {"issued_by": issued_by, "command_id": command_id, "correlation_id": correlation_id},
    )
    _object_setattr(instance, "__pydantic_fields_set__", set(_METADATA_FIELDS))
    _object_setattr(instance, "__pydantic_extra__", None)
    _object_setattr(instance, "__pydantic_private__", None)
    return instance


def trusted_event(
    *,
    event_id: str,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    payload: dict[str, Any],
    metadata: Metadata,
    occurred_at_unix_s: float,
    schema_version: int = SCHEMA_VERSION,
) -> EventEnvelope:
    """An EventEnvelope from already-validated parts, without validation (hot path only:
    the CommandHandler, whose inputs come from a validated CommandMessage, and the in-memory
    log rebuilding what it stored)."""
    instance = _object_new(EventEnvelope)
    _object_setattr(
        instance,
        "__dict__",
        {
            "event_id": event_id,
            "event_type": event_type,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "aggregate_version": aggregate_version,
            "payload": payload,
            "metadata": metadata,
            "occurred_at_unix_s": occurred_at_unix_s,
            "schema_version": schema_version,
        },
    )
    _object_setattr(instance, "__pydantic_fields_set__", set(_EVENT_FIELDS))
    _object_setattr(instance, "__pydantic_extra__", None)
    _object_setattr(instance, "__pydantic_private__", None)
    return instance
