"""EventLog and RejectionLog on JetStream.

An append is a compare-and-set: it publishes with ``Nats-Expected-Last-Subject-Sequence``
scoped by ``Nats-Expected-Last-Subject-Sequence-Subject`` to all of the aggregate's event
subjects (nats-server >= 2.11), so exactly one of two concurrent writers of a version wins.
JetStream's wrong-last-sequence error (err_code 10071) becomes ConcurrencyError.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence

from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from heddle.events.envelopes import EventEnvelope, RejectionEnvelope
from heddle.events.errors import ConcurrencyError
from heddle.events.event_log import (
    EventAnchor,
    EventLog,
    EventSubscription,
    RejectionLog,
    is_anchor,
)
from heddle.events.jetstream import (
    aggregate_event_filter,
    ensure_event_stream,
    ensure_rejection_stream,
    event_stream_name,
    event_subject,
    flush_interest,
    rejection_stream_name,
    rejection_subject,
)
from heddle.events.jetstream_acks import AckRouter, no_responders, raise_if_refused, resolve_future
from heddle.events.jetstream_batch import BatchAppend

__all__ = ["JetStreamEventLog", "JetStreamRejectionLog"]

WRONG_LAST_SEQUENCE = 10071
"""JetStream err_code for a failed Nats-Expected-Last-Subject-Sequence check."""
LAST_SEQUENCE_CACHE_SIZE = 100_000
"""Aggregates whose (version, stream sequence) this process remembers to skip a lookup."""
DEFAULT_ACK_TIMEOUT_S = 5.0
"""How long an append waits for JetStream's ack (a publish the server drops, e.g. for a
permissions violation, never gets one)."""
FETCH_BATCH = 256
"""Messages per pull request when replaying a history."""
_ACK_SEQ = re.compile(rb'"seq":(\d+)')


async def _fetch_all(
    js: JetStreamContext, stream: str, filter_subject: str, start_sequence: int = 0
) -> list[Msg]:
    """Every message on ``filter_subject`` now in ``stream`` (from stream sequence
    ``start_sequence`` on, if given), in stream order."""
    config = api.ConsumerConfig(
        filter_subject=filter_subject,
        deliver_policy=(
            api.DeliverPolicy.BY_START_SEQUENCE if start_sequence > 0 else api.DeliverPolicy.ALL
        ),
        opt_start_seq=start_sequence if start_sequence > 0 else None,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    try:
        info = await js.add_consumer(stream, config)
    except NotFoundError:
        return []  # no stream yet: nothing was ever appended
    remaining = info.num_pending or 0
    messages: list[Msg] = []
    if remaining:
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
        try:
            while remaining > 0:
                batch = await sub.fetch(min(remaining, FETCH_BATCH), timeout=5.0)
                messages.extend(batch)
                remaining -= len(batch)
        finally:
            await sub.unsubscribe()
    await js.delete_consumer(stream, info.name)
    return messages


class _JetStreamSubscription(EventSubscription):
    def __init__(self, sub: JetStreamContext.PushSubscription) -> None:
        self._sub = sub
        self._messages = sub.messages

    async def __anext__(self) -> EventEnvelope:
        msg = await self._messages.__anext__()
        return EventEnvelope.model_validate_json(msg.data)

    async def close(self) -> None:
        # A closed connection has already dropped the subscription: nothing left to undo.
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()


class JetStreamEventLog(EventLog):
    """Events in ``HEDDLE_EVENTS_{TYPE}`` streams.

    With ``ensure_streams`` (default) a stream is created on first use of its type; pass
    False for roles that may not manage streams (the framework provisions them): on such a
    role the creation is refused at once with PublishPermissionError.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        ensure_streams: bool = True,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
    ) -> None:
        self._js = js
        self._nc = js._nc  # JetStreamContext exposes no public handle to its connection
        self._ensure_streams = ensure_streams
        self._ack_timeout_s = ack_timeout_s
        self._ensured: set[str] = set()
        self._acks = AckRouter(self._nc, ack_timeout_s)
        # (type, id) -> (aggregate_version, stream sequence) of its last event we saw.
        self._last: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()

    async def _ensure(self, aggregate_type: str) -> None:
        if self._ensure_streams and aggregate_type not in self._ensured:
            await raise_if_refused(
                self._nc,
                f"$JS.API.STREAM.CREATE.{event_stream_name(aggregate_type)}",
                ensure_event_stream(self._js, aggregate_type),
            )
            self._ensured.add(aggregate_type)

    def _remember(self, key: tuple[str, str], version: int, seq: int) -> None:
        self._last[key] = (version, seq)
        self._last.move_to_end(key)
        if len(self._last) > LAST_SEQUENCE_CACHE_SIZE:
            self._last.popitem(last=False)

    async def _lookup_last(self, aggregate_type: str, aggregate_id: str) -> tuple[int, int]:
        try:
            msg = await self._js.get_msg(
                event_stream_name(aggregate_type),
                subject=aggregate_event_filter(aggregate_type, aggregate_id),
            )
        except NotFoundError:
            return 0, 0
        envelope = EventEnvelope.model_validate_json(msg.data)
        self._remember((aggregate_type, aggregate_id), envelope.aggregate_version, msg.seq)
        return envelope.aggregate_version, msg.seq

    async def current_version(self, aggregate_type: str, aggregate_id: str) -> int:
        version, _ = await self._lookup_last(aggregate_type, aggregate_id)
        return version

    async def _expected_sequence(
        self, envelope: EventEnvelope, expected_version: int | None
    ) -> int:
        """The stream sequence the CAS must expect, after checking both version rules."""
        aggregate_type, aggregate_id = envelope.aggregate_type, envelope.aggregate_id
        key = (aggregate_type, aggregate_id)
        known = self._last.get(key)
        if known is None and envelope.aggregate_version == 1:
            known = (0, 0)  # a first event: CAS on "no message yet", no lookup needed
        fresh = known is None
        if known is None:
            known = await self._lookup_last(aggregate_type, aggregate_id)
        wanted = envelope.aggregate_version - 1
        if (expected_version is not None and expected_version != known[0]) or wanted != known[0]:
            if not fresh:  # our memory may be stale: ask the stream before refusing
                known = await self._lookup_last(aggregate_type, aggregate_id)
            if expected_version is not None and expected_version != known[0]:
                raise ConcurrencyError(
                    f"{aggregate_type}/{aggregate_id} is at version {known[0]}, "
                    f"expected {expected_version}"
                )
            if wanted != known[0]:
                raise ConcurrencyError(
                    f"{aggregate_type}/{aggregate_id} is at version {known[0]}; envelope has "
                    f"version {envelope.aggregate_version} (must be {known[0] + 1})"
                )
        return known[1]

    async def _prepare(
        self, envelope: EventEnvelope, expected_version: int | None
    ) -> tuple[str, bytes, dict[str, str]]:
        """(subject, data, headers) of the CAS publish; ConcurrencyError if it cannot win."""
        return self._message(envelope, await self._expected_sequence(envelope, expected_version))

    @staticmethod
    def _message(envelope: EventEnvelope, expected_seq: int) -> tuple[str, bytes, dict[str, str]]:
        aggregate_type, aggregate_id = envelope.aggregate_type, envelope.aggregate_id
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(expected_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": aggregate_event_filter(
                aggregate_type, aggregate_id
            ),
            "Nats-Msg-Id": envelope.event_id,
        }
        subject = event_subject(aggregate_type, aggregate_id, envelope.event_type)
        return subject, envelope.model_dump_json().encode(), headers

    def _settle(self, envelope: EventEnvelope, reply: Msg | Exception) -> None:
        """Record a successful ack, or raise what the ack says (10071 -> ConcurrencyError;
        a refused publish arrives here as PublishPermissionError)."""
        if isinstance(reply, Exception):
            raise reply
        key = (envelope.aggregate_type, envelope.aggregate_id)
        if no_responders(reply):
            raise NoStreamResponseError  # no stream listens on the subject
        data = reply.data
        if b'"error"' not in data:
            match = _ACK_SEQ.search(data)
            if match is not None:  # the common case, without a JSON parse
                self._remember(key, envelope.aggregate_version, int(match.group(1)))
                return
        ack = json.loads(data)
        error = ack.get("error")
        if error is not None:
            try:
                APIError.from_error(error)  # raises the matching nats.js error
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                self._last.pop(key, None)
                raise ConcurrencyError(
                    f"{key[0]}/{key[1]}: another writer appended version "
                    f"{envelope.aggregate_version} first"
                ) from exc
        self._remember(key, envelope.aggregate_version, int(ack["seq"]))

    async def append(self, envelope: EventEnvelope, expected_version: int | None) -> None:
        await self._ensure(envelope.aggregate_type)
        subject, data, headers = await self._prepare(envelope, expected_version)
        # The shared ack router rather than nc.request()/js.publish(): no per-append
        # wait_for() or PubAck. Concurrent appends pipeline on the one connection.
        await self._acks.start()
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        token, reply_subject = self._acks.route(resolve_future, future, subject)
        self._acks.arm_timeout(token, future)
        try:
            await self._acks.publish(subject, data, reply_subject, headers)
            reply = await future  # nats.errors.TimeoutError after ack_timeout_s
        finally:
            self._acks.forget(token)
        self._settle(envelope, reply)

    async def append_batch(
        self,
        items: Sequence[tuple[EventEnvelope, int | None]],
        appended: Callable[[int], None] | None = None,
    ) -> list[Exception | None]:
        """Append many events, pipelined; one result per item (None = appended).

        Each aggregate's events form a chain: its next event is published as soon as the
        previous one's ack arrives (its CAS needs that stream sequence), while the chains of
        all aggregates run at once. One failure stops the rest of its chain (they get
        ConcurrencyError) but no other chain. An event with no ack ``ack_timeout_s`` after
        its publish gets ``nats.errors.TimeoutError``. ``appended(i)`` is called as each
        item's ack arrives. This is the high-throughput path: a publish and a dict entry per
        event, no future or timer per event.
        """
        chains: dict[tuple[str, str], deque[int]] = {}
        for index, (envelope, _) in enumerate(items):
            chains.setdefault((envelope.aggregate_type, envelope.aggregate_id), deque()).append(
                index
            )
        for aggregate_type in {key[0] for key in chains}:
            await self._ensure(aggregate_type)
        await self._acks.start()
        return await BatchAppend(
            items, self._acks, self._ack_timeout_s, self._prepare, self._settle, appended
        ).run(chains)

    async def load(
        self, aggregate_type: str, aggregate_id: str, from_version: int = 0
    ) -> AsyncIterator[EventEnvelope]:
        messages = await _fetch_all(
            self._js,
            event_stream_name(aggregate_type),
            aggregate_event_filter(aggregate_type, aggregate_id),
        )
        for envelope in self._envelopes(aggregate_type, aggregate_id, messages):
            if envelope.aggregate_version > from_version:
                yield envelope

    def _envelopes(
        self, aggregate_type: str, aggregate_id: str, messages: list[Msg]
    ) -> list[EventEnvelope]:
        """Parse fetched messages; remember the last one's (version, stream sequence)."""
        envelopes = [EventEnvelope.model_validate_json(msg.data) for msg in messages]
        if envelopes:
            self._remember(
                (aggregate_type, aggregate_id),
                envelopes[-1].aggregate_version,
                messages[-1].metadata.sequence.stream,
            )
        return envelopes

    async def load_after(
        self, aggregate_type: str, aggregate_id: str, anchor: EventAnchor
    ) -> list[EventEnvelope] | None:
        """Fetches from the anchor's stream sequence when it has one, so a rebuild from a
        snapshot downloads only the anchor and what follows it, not the whole history. If
        the message there is not the anchor (a stale or wrong position, e.g. a restored
        stream), it checks against the whole history instead (default behaviour)."""
        if anchor.position:
            messages = await _fetch_all(
                self._js,
                event_stream_name(aggregate_type),
                aggregate_event_filter(aggregate_type, aggregate_id),
                start_sequence=anchor.position,
            )
            if messages and messages[0].metadata.sequence.stream == anchor.position:
                envelopes = self._envelopes(aggregate_type, aggregate_id, messages)
                if is_anchor(envelopes[0], anchor):
                    return envelopes[1:]
        return await super().load_after(aggregate_type, aggregate_id, anchor)

    async def find_first(
        self, aggregate_type: str, aggregate_id: str, event_type: str
    ) -> EventEnvelope | None:
        """One message-get request (the first message on the event type's subject)."""
        try:
            msg = await self._js.get_msg(
                event_stream_name(aggregate_type),
                seq=1,
                subject=event_subject(aggregate_type, aggregate_id, event_type),
                next=True,
            )
        except NotFoundError:
            return None
        return EventEnvelope.model_validate_json(msg.data)

    def position_of(self, aggregate_type: str, aggregate_id: str, version: int) -> int | None:
        known = self._last.get((aggregate_type, aggregate_id))
        return known[1] if known is not None and known[0] == version else None

    async def subscribe(self, aggregate_type: str) -> EventSubscription:
        await self._ensure(aggregate_type)
        sub = await self._js.subscribe(
            f"heddle.events.{aggregate_type}.>",
            stream=event_stream_name(aggregate_type),
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.NEW,
        )
        # The consumer exists once subscribe() returns; make sure the server has also
        # registered our delivery subscription before we report ready.
        await flush_interest(self._nc)
        return _JetStreamSubscription(sub)


class JetStreamRejectionLog(RejectionLog):
    """Rejections in ``HEDDLE_REJECTIONS_{TYPE}`` streams (no CAS)."""

    def __init__(self, js: JetStreamContext, *, ensure_streams: bool = True) -> None:
        self._js = js
        self._ensure_streams = ensure_streams
        self._ensured: set[str] = set()

    async def append(self, rejection: RejectionEnvelope) -> None:
        nc = self._js._nc  # JetStreamContext exposes no public handle to its connection
        if self._ensure_streams and rejection.aggregate_type not in self._ensured:
            await raise_if_refused(
                nc,
                f"$JS.API.STREAM.CREATE.{rejection_stream_name(rejection.aggregate_type)}",
                ensure_rejection_stream(self._js, rejection.aggregate_type),
            )
            self._ensured.add(rejection.aggregate_type)
        subject = rejection_subject(
            rejection.aggregate_type, rejection.aggregate_id, rejection.command_type
        )
        await raise_if_refused(
            nc,
            subject,
            self._js.publish(
                subject,
                rejection.model_dump_json().encode(),
                headers={"Nats-Msg-Id": rejection.rejection_id},
            ),
        )

    async def load(
        self, aggregate_type: str, aggregate_id: str
    ) -> AsyncIterator[RejectionEnvelope]:
        messages = await _fetch_all(
            self._js,
            rejection_stream_name(aggregate_type),
            f"heddle.rejections.{aggregate_type}.{aggregate_id}.*",
        )
        for msg in messages:
            yield RejectionEnvelope.model_validate_json(msg.data)
