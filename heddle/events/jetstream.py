"""JetStream subjects, stream names and idempotent stream set-up.

Subjects (seed, "JetStream subjects and streams"):
``heddle.events.{type}.{id}.{event_type}`` in stream ``HEDDLE_EVENTS_{TYPE}``,
``heddle.commands.{type}.{id}.{command_type}`` in ``HEDDLE_COMMANDS_{TYPE}``,
``heddle.rejections.{type}.{id}.{command_type}`` in ``HEDDLE_REJECTIONS_{TYPE}``,
``heddle.dedup.{type}.{id}`` on NATS core. Streams use file storage, one replica and
age-based retention.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError

from heddle.events.envelopes import CommandMessage

__all__ = [
    "COMMAND_MAX_AGE_SECONDS",
    "EVENT_MAX_AGE_SECONDS",
    "REJECTION_MAX_AGE_SECONDS",
    "aggregate_event_filter",
    "command_stream_name",
    "command_subject",
    "dedup_subject",
    "ensure_command_stream",
    "ensure_event_stream",
    "ensure_rejection_stream",
    "event_stream_name",
    "event_subject",
    "flush_interest",
    "publish_command",
    "rejection_stream_name",
    "rejection_subject",
]

_DAY_S = 24 * 3600.0
EVENT_MAX_AGE_SECONDS = 7 * _DAY_S
"""Events are kept 7 days (seed: age-based retention, 7 days for events)."""
COMMAND_MAX_AGE_SECONDS = 7 * _DAY_S
"""Commands are kept 7 days (seed)."""
REJECTION_MAX_AGE_SECONDS = 30 * _DAY_S
"""Rejections are kept 30 days so audits can query them (seed)."""

_STREAM_NAME_IN_USE = 10058
"""JetStream err_code: a stream with this name exists with a different configuration."""


def event_subject(aggregate_type: str, aggregate_id: str, event_type: str) -> str:
    return f"heddle.events.{aggregate_type}.{aggregate_id}.{event_type}"


def aggregate_event_filter(aggregate_type: str, aggregate_id: str) -> str:
    """All event subjects of one aggregate (the CAS scope of an append)."""
    return f"heddle.events.{aggregate_type}.{aggregate_id}.*"


def command_subject(aggregate_type: str, aggregate_id: str, command_type: str) -> str:
    return f"heddle.commands.{aggregate_type}.{aggregate_id}.{command_type}"


def rejection_subject(aggregate_type: str, aggregate_id: str, command_type: str) -> str:
    return f"heddle.rejections.{aggregate_type}.{aggregate_id}.{command_type}"


def dedup_subject(aggregate_type: str, aggregate_id: str) -> str:
    return f"heddle.dedup.{aggregate_type}.{aggregate_id}"


_MAX_AGE_SECONDS = {
    "events": EVENT_MAX_AGE_SECONDS,
    "commands": COMMAND_MAX_AGE_SECONDS,
    "rejections": REJECTION_MAX_AGE_SECONDS,
}


def _stream_name(kind: str, aggregate_type: str) -> str:
    return f"HEDDLE_{kind.upper()}_{aggregate_type.upper()}"


def event_stream_name(aggregate_type: str) -> str:
    return _stream_name("events", aggregate_type)


def command_stream_name(aggregate_type: str) -> str:
    return _stream_name("commands", aggregate_type)


def rejection_stream_name(aggregate_type: str) -> str:
    return _stream_name("rejections", aggregate_type)


async def _ensure_stream(
    js: JetStreamContext, name: str, subject: str, max_age_s: float
) -> api.StreamInfo:
    config = api.StreamConfig(
        name=name,
        subjects=[subject],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=1,
        max_age=max_age_s,
    )
    try:
        # Creating with an identical configuration succeeds, so concurrent set-up is safe.
        return await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        return await js.update_stream(config)


async def _ensure_kind(js: JetStreamContext, kind: str, aggregate_type: str) -> api.StreamInfo:
    return await _ensure_stream(
        js,
        _stream_name(kind, aggregate_type),
        f"heddle.{kind}.{aggregate_type}.>",
        _MAX_AGE_SECONDS[kind],
    )


async def ensure_event_stream(js: JetStreamContext, aggregate_type: str) -> api.StreamInfo:
    """Create or update ``HEDDLE_EVENTS_{TYPE}`` (idempotent)."""
    return await _ensure_kind(js, "events", aggregate_type)


async def ensure_command_stream(js: JetStreamContext, aggregate_type: str) -> api.StreamInfo:
    """Create or update ``HEDDLE_COMMANDS_{TYPE}`` (idempotent)."""
    return await _ensure_kind(js, "commands", aggregate_type)


async def ensure_rejection_stream(js: JetStreamContext, aggregate_type: str) -> api.StreamInfo:
    """Create or update ``HEDDLE_REJECTIONS_{TYPE}`` (idempotent)."""
    return await _ensure_kind(js, "rejections", aggregate_type)


async def flush_interest(nc: NATS) -> None:
    """Return once the server has registered every subscription made on ``nc`` so far.

    One ``nc.flush()`` is not enough with nats-py 2.16: it writes its PING straight to the
    socket while a new SUB may still sit in the client's pending buffer, so the PONG can
    come back before the server has seen the SUB (measured: about 1 in 20 cross-connection
    publishes right after subscribe+flush were lost). The first flush pushes the buffer out;
    the second PING then travels behind the SUB, so its PONG proves the interest exists.
    """
    await nc.flush()
    await nc.flush()


async def publish_command(js: JetStreamContext, command: CommandMessage) -> api.PubAck:
    """Publish a command to its JetStream subject (the command id de-duplicates retries)."""
    return await js.publish(
        command_subject(command.aggregate_type, command.aggregate_id, command.command_type),
        command.model_dump_json().encode(),
        headers={"Nats-Msg-Id": command.command_id},
    )
