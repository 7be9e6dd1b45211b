"""Framework projectors P1 (scope membership) and P2 (cascade finalization).

P1 keeps (root_type, root_id) -> child_type -> {child_ids} from the reserved
``_child_membership`` payload key on root events. P2, on a root's InternalFinalized, sends
InternalFinalize to every child P1 knows, with a deterministic command id so a re-delivered
event produces the same commands; rejections and lost races are expected and swallowed.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol

from heddle.events.aggregate import INTERNAL_FINALIZE, INTERNAL_FINALIZED, iter_child_membership
from heddle.events.dispatcher import Projector
from heddle.events.envelopes import CommandMessage, EventEnvelope, Metadata
from heddle.events.errors import CommandRejected, ConcurrencyError
from heddle.events.kv import KeyValueStore
from heddle.events.lease import LEASE_TTL_SECONDS, finalization_lease
from heddle.events.registry import is_root_type

__all__ = [
    "CascadeProjector",
    "CommandSink",
    "ScopeMembershipProjector",
    "cascade_command_id",
    "send_finalize",
]

logger = logging.getLogger(__name__)

FINALIZE_ATTEMPTS = 3
"""Tries per InternalFinalize when the CAS is lost (each reloads the aggregate); after that
the miss is swallowed as the seed allows: finalization is opportunistic."""


class CommandSink(Protocol):
    """Where projectors send commands: a CommandHandler, or a bus client with handle()."""

    async def handle(self, cmd: CommandMessage) -> object: ...


def cascade_command_id(root_id: str, child_id: str, root_event_id: str) -> str:
    """sha256-derived id over (root_id, child_id, root_event_id): stable across re-delivery."""
    digest = hashlib.sha256(f"{root_id}\x1f{child_id}\x1f{root_event_id}".encode()).hexdigest()
    return f"cascade-{digest[:32]}"


async def send_finalize(
    sink: CommandSink,
    cmd: CommandMessage,
    *,
    kv: KeyValueStore | None,
    projector_name: str,
    lease_ttl_s: int,
) -> bool:
    """Claim the finalization lease (when a store is given) and send ``cmd``.

    Returns True if the command was sent and accepted. CommandRejected is swallowed at once,
    ConcurrencyError after FINALIZE_ATTEMPTS tries: finalization is opportunistic and the
    aggregate ignores duplicates.
    """
    if kv is not None:
        async with finalization_lease(
            kv,
            cmd.aggregate_type,
            cmd.aggregate_id,
            projector_name=projector_name,
            ttl_s=lease_ttl_s,
        ) as claimed:
            if not claimed:
                logger.info(
                    "%s: lease on %s/%s held by another projector; skipping",
                    projector_name,
                    cmd.aggregate_type,
                    cmd.aggregate_id,
                )
                return False
    for attempt in range(1, FINALIZE_ATTEMPTS + 1):
        try:
            await sink.handle(cmd)
            return True
        except ConcurrencyError as exc:
            # A stale cached copy lost the CAS and was evicted: a retry reloads it.
            if attempt == FINALIZE_ATTEMPTS:
                logger.info(
                    "%s: %s/%s not finalized after %d attempts: %s",
                    projector_name,
                    cmd.aggregate_type,
                    cmd.aggregate_id,
                    attempt,
                    exc,
                )
        except CommandRejected as exc:
            logger.info(
                "%s: %s/%s not finalized: %s",
                projector_name,
                cmd.aggregate_type,
                cmd.aggregate_id,
                exc,
            )
            break
    return False


class ScopeMembershipProjector(Projector):
    """P1: which children each root aggregate has, kept in memory."""

    name = "scope_membership"

    def __init__(self) -> None:
        self._members: dict[tuple[str, str], dict[str, set[str]]] = {}

    async def project(self, envelope: EventEnvelope) -> None:
        if not is_root_type(envelope.aggregate_type):
            return
        scope = (envelope.aggregate_type, envelope.aggregate_id)
        for child_type, child_id, is_add in iter_child_membership(envelope.payload):
            children = self._members.setdefault(scope, {})
            if is_add:
                children.setdefault(child_type, set()).add(child_id)
            else:
                children.get(child_type, set()).discard(child_id)

    def children(self, root_type: str, root_id: str) -> dict[str, frozenset[str]]:
        """child_type -> child ids of one root (empty if none are known)."""
        members = self._members.get((root_type, root_id), {})
        return {kind: frozenset(ids) for kind, ids in members.items() if ids}


class CascadeProjector(Projector):
    """P2: finalize every child of a root when the root is finalized."""

    name = "cascade"
    issued_by = "framework:cascade"

    def __init__(
        self,
        membership: ScopeMembershipProjector,
        sink: CommandSink,
        *,
        kv: KeyValueStore | None = None,
        lease_ttl_s: int = LEASE_TTL_SECONDS,
    ) -> None:
        self._membership = membership
        self._sink = sink
        self._kv = kv
        self._lease_ttl_s = lease_ttl_s

    async def project(self, envelope: EventEnvelope) -> None:
        if envelope.event_type != INTERNAL_FINALIZED or not is_root_type(envelope.aggregate_type):
            return
        children = self._membership.children(envelope.aggregate_type, envelope.aggregate_id)
        for child_type in sorted(children):
            for child_id in sorted(children[child_type]):
                cmd = CommandMessage(
                    command_id=cascade_command_id(
                        envelope.aggregate_id, child_id, envelope.event_id
                    ),
                    command_type=INTERNAL_FINALIZE,
                    aggregate_type=child_type,
                    aggregate_id=child_id,
                    payload={
                        "reason": f"cascade from {envelope.aggregate_type}/{envelope.aggregate_id}"
                    },
                    metadata=Metadata(
                        issued_by=self.issued_by,
                        command_id=envelope.metadata.command_id,
                        correlation_id=envelope.metadata.correlation_id,
                    ),
                    issued_at_unix_s=envelope.occurred_at_unix_s,
                )
                await send_finalize(
                    self._sink,
                    cmd,
                    kv=self._kv,
                    projector_name=self.name,
                    lease_ttl_s=self._lease_ttl_s,
                )
