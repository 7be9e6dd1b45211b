"""heddle.events: event-sourced job and task lifecycles (in memory for the twin, JetStream live).

Aggregates change only through apply(); CommandHandler turns commands into CAS-appended
events; EventDispatcher feeds projectors (P1 membership, P2 cascade, P3 horizon); snapshots,
an LRU cache and a dedup bus make retries idempotent across calls and processes.
"""

from heddle.events.acl import ROLES, mask_secret, nats_auth_config, role_permissions
from heddle.events.aggregate import (
    CHILD_MEMBERSHIP_KEY,
    DEDUP_RING_SIZE,
    FRAMEWORK_ONLY_EVENT_TYPES,
    INTERNAL_FINALIZE,
    INTERNAL_FINALIZED,
    Aggregate,
    IntervalAggregate,
    Phase,
    RootAggregate,
    child_membership,
    snake_case,
)
from heddle.events.cache import DEFAULT_CACHE_SIZE, AggregateCache
from heddle.events.command_handler import CommandHandler
from heddle.events.dedup import (
    DedupPublisher,
    DedupSubscriber,
    InMemoryDedupBus,
    NatsDedupPublisher,
    NatsDedupSubscriber,
    NullDedupPublisher,
    NullDedupSubscriber,
)
from heddle.events.dispatcher import EventDispatcher, Projector
from heddle.events.envelopes import CommandMessage, EventEnvelope, Metadata, RejectionEnvelope
from heddle.events.errors import (
    AggregateInvariantError,
    CommandRejected,
    ConcurrencyError,
    CorruptAggregateAlert,
    EventsError,
    LeaseUnsupportedError,
    PublishPermissionError,
    SnapshotError,
    UnknownEventVersionError,
    UntrustedSnapshotError,
)
from heddle.events.event_log import (
    EventAnchor,
    EventLog,
    EventSubscription,
    InMemoryEventLog,
    InMemoryRejectionLog,
    RejectionLog,
)
from heddle.events.horizon import FinalizationHorizonProjector
from heddle.events.issuer_conventions import (
    is_bridge_issuer,
    is_framework_issuer,
    is_observer_issuer,
    is_projector_issuer,
    is_recognized_issuer,
    is_system_issuer,
    is_user_issuer,
)
from heddle.events.jetstream import (
    ensure_command_stream,
    ensure_event_stream,
    ensure_rejection_stream,
)
from heddle.events.jetstream_log import JetStreamEventLog, JetStreamRejectionLog
from heddle.events.kv import InMemoryKeyValueStore, KeyValueStore
from heddle.events.lease import LEASE_TTL_SECONDS, finalization_lease, lease_key
from heddle.events.lifecycle import JobAggregate, TaskAggregate, TaskStatus
from heddle.events.nats_kv import NatsKeyValueStore, nats_key
from heddle.events.projectors import CascadeProjector, ScopeMembershipProjector, cascade_command_id
from heddle.events.registry import (
    AGGREGATE_REGISTRY,
    get_aggregate_class,
    is_root_type,
    register_aggregate,
)
from heddle.events.schemas import export_schemas
from heddle.events.sli import CapturingRecorder, Recorder, install_recorder
from heddle.events.snapshot import (
    SNAPSHOT_EVERY_N,
    SNAPSHOT_EVERY_T_SECONDS,
    SnapshotStore,
    VerifiedSnapshot,
)

__all__ = [
    "AGGREGATE_REGISTRY",
    "CHILD_MEMBERSHIP_KEY",
    "DEDUP_RING_SIZE",
    "DEFAULT_CACHE_SIZE",
    "FRAMEWORK_ONLY_EVENT_TYPES",
    "INTERNAL_FINALIZE",
    "INTERNAL_FINALIZED",
    "LEASE_TTL_SECONDS",
    "ROLES",
    "SNAPSHOT_EVERY_N",
    "SNAPSHOT_EVERY_T_SECONDS",
    "Aggregate",
    "AggregateCache",
    "AggregateInvariantError",
    "CapturingRecorder",
    "CascadeProjector",
    "CommandHandler",
    "CommandMessage",
    "CommandRejected",
    "ConcurrencyError",
    "CorruptAggregateAlert",
    "DedupPublisher",
    "DedupSubscriber",
    "EventAnchor",
    "EventDispatcher",
    "EventEnvelope",
    "EventLog",
    "EventSubscription",
    "EventsError",
    "FinalizationHorizonProjector",
    "InMemoryDedupBus",
    "InMemoryEventLog",
    "InMemoryKeyValueStore",
    "InMemoryRejectionLog",
    "IntervalAggregate",
    "JetStreamEventLog",
    "JetStreamRejectionLog",
    "JobAggregate",
    "KeyValueStore",
    "LeaseUnsupportedError",
    "Metadata",
    "NatsDedupPublisher",
    "NatsDedupSubscriber",
    "NatsKeyValueStore",
    "NullDedupPublisher",
    "NullDedupSubscriber",
    "Phase",
    "Projector",
    "PublishPermissionError",
    "Recorder",
    "RejectionEnvelope",
    "RejectionLog",
    "RootAggregate",
    "ScopeMembershipProjector",
    "SnapshotError",
    "SnapshotStore",
    "TaskAggregate",
    "TaskStatus",
    "UnknownEventVersionError",
    "UntrustedSnapshotError",
    "VerifiedSnapshot",
    "cascade_command_id",
    "child_membership",
    "ensure_command_stream",
    "ensure_event_stream",
    "ensure_rejection_stream",
    "export_schemas",
    "finalization_lease",
    "get_aggregate_class",
    "install_recorder",
    "is_bridge_issuer",
    "is_framework_issuer",
    "is_observer_issuer",
    "is_projector_issuer",
    "is_recognized_issuer",
    "is_root_type",
    "is_system_issuer",
    "is_user_issuer",
    "lease_key",
    "mask_secret",
    "nats_auth_config",
    "nats_key",
    "register_aggregate",
    "role_permissions",
    "snake_case",
]
