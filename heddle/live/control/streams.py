"""JetStream plumbing of the control plane: the agents' report stream and a full read of an
aggregate type's event history (the restart path)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError

from heddle.events import EventEnvelope
from heddle.events.jetstream import aggregate_event_filter, event_stream_name
from heddle.live.protocol import REPORT_DUPLICATE_WINDOW_S, REPORT_STREAM, REPORT_STREAM_SUBJECTS

__all__ = ["REPORT_CONSUMER", "ensure_report_stream", "last_event", "read_history"]

REPORT_CONSUMER = "heddle-control-plane"
"""Durable consumer of the report stream: its position survives a control-plane restart."""
READ_BATCH = 1000
"""Messages per pull when reading a history back."""
_STREAM_NAME_IN_USE = 10058


async def ensure_report_stream(js: JetStreamContext) -> None:
    """Create the report stream if missing (agents may have created it first: then keep it)."""
    config = api.StreamConfig(
        name=REPORT_STREAM,
        subjects=list(REPORT_STREAM_SUBJECTS),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=1,
        duplicate_window=REPORT_DUPLICATE_WINDOW_S,
        max_age=7 * 24 * 3600.0,
    )
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise


async def read_history(js: JetStreamContext, aggregate_type: str) -> AsyncIterator[EventEnvelope]:
    """Every event of ``aggregate_type`` now in its stream, in stream order."""
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    stream = event_stream_name(aggregate_type)
    try:
        info = await js.add_consumer(stream, config)
    except NotFoundError:
        return  # no stream yet: nothing was ever recorded
    remaining = info.num_pending or 0
    sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
    try:
        while remaining > 0:
            batch = await sub.fetch(min(remaining, READ_BATCH), timeout=10.0)
            remaining -= len(batch)
            for msg in batch:
                yield EventEnvelope.model_validate_json(msg.data)
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream, info.name)


async def last_event(js: JetStreamContext, aggregate_type: str, aggregate_id: str) -> EventEnvelope | None:
    """The aggregate's latest event in the log (one request), or None if it has none."""
    try:
        msg = await js.get_msg(event_stream_name(aggregate_type),
                               subject=aggregate_event_filter(aggregate_type, aggregate_id))
    except NotFoundError:
        return None
    return EventEnvelope.model_validate_json(msg.data)
