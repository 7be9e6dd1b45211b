"""Errors raised by heddle.events: one root, one class per thing a caller handles differently.

Infrastructure errors are translated at the boundary (JetStream err_code 10071 becomes
ConcurrencyError) so callers never match on a NATS exception type.
"""

from __future__ import annotations

__all__ = [
    "AggregateInvariantError",
    "CommandRejected",
    "ConcurrencyError",
    "CorruptAggregateAlert",
    "EventsError",
    "LeaseUnsupportedError",
    "PublishPermissionError",
    "SnapshotError",
    "UnknownEventVersionError",
    "UntrustedSnapshotError",
]


class EventsError(Exception):
    """Root of every error raised by heddle.events."""


class ConcurrencyError(EventsError):
    """The aggregate moved on since the caller read it (CAS append lost, or the command's
    expected_aggregate_version is stale). Handled by the caller: reload and retry, or give up."""


class CommandRejected(EventsError):
    """A command handler refused the command for a domain reason (e.g. ALREADY_FINALIZED).

    The CommandHandler records it in the RejectionLog and re-raises; the issuer handles it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class AggregateInvariantError(EventsError):
    """An apply_<event> handler failed; the original exception is chained as __cause__.

    The aggregate instance must be discarded (the CommandHandler evicts it from its cache).
    """


class CorruptAggregateAlert(EventsError):
    """An event violates provenance (a framework-only event not issued by framework:*).

    Operators handle it: it means something bypassed the NATS publish ACL.
    """


class UnknownEventVersionError(EventsError):
    """No apply_<event> handler exists: the log was written by a newer heddle than this one.

    Operators handle it by upgrading this process before it replays the aggregate.
    """


class SnapshotError(EventsError):
    """A snapshot could not be written or read (state not JSON-serialisable, bad blob)."""


class UntrustedSnapshotError(SnapshotError):
    """A snapshot disagrees with the event log it claims to summarise (its last event is not
    in the log, or framework-only state it carries rests on no framework-issued event).
    The CommandHandler logs it at ERROR and rebuilds from the events instead; operators
    find out who wrote the snapshot key (only the framework role may)."""


class LeaseUnsupportedError(EventsError):
    """The key-value store cannot expire keys (nats-server < 2.11, or a bucket created
    without allow_msg_ttl), so a lease would never expire after a crash. Deployment fixes it."""


class PublishPermissionError(EventsError, PermissionError):
    """The server refused a publish: this connection's user may not publish to ``subject``
    (a "permissions violation" reported on the connection). Retrying cannot help; the
    deployment (which role the process connects as) or the caller (what it tries to write)
    is wrong. Raised promptly, not after the ack timeout."""

    def __init__(self, subject: str, server_message: str) -> None:
        super().__init__(
            f"the server refused the publish to {subject!r}: {server_message} (this "
            "connection's NATS user may not publish there; see heddle.events.acl roles)"
        )
        self.subject = subject
        self.server_message = server_message
