"""finalization_lease: who gets to finalize an aggregate.

P2 (cascade) and P3 (horizon) both claim ``heddle:events:horizon:{type}:{id}`` with an atomic
set-if-absent and a TTL before issuing InternalFinalize; the first wins, the other skips. The
lease is never released in the normal flow (releasing early invites a re-claim race); if the
holder crashes the TTL frees it. It is for a clean audit trail, not for correctness: the
aggregate already ignores a second finalization.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from heddle.events import sli
from heddle.events.kv import KeyValueStore

__all__ = ["LEASE_TTL_SECONDS", "finalization_lease", "lease_key"]

LEASE_TTL_SECONDS = 30
"""Default lease lifetime (seed: 30 seconds)."""


def lease_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"heddle:events:horizon:{aggregate_type}:{aggregate_id}"


@asynccontextmanager
async def finalization_lease(
    kv: KeyValueStore,
    aggregate_type: str,
    aggregate_id: str,
    *,
    projector_name: str,
    ttl_s: int = LEASE_TTL_SECONDS,
) -> AsyncIterator[bool]:
    """Yield True if this caller claimed the lease, False if another holds it.

    Raises LeaseUnsupportedError where the store cannot expire keys.
    """
    started = time.perf_counter()
    holder = json.dumps({"projector": projector_name, "claimed_at_unix_s": time.time()})
    claimed = await kv.set_if_not_exists(
        lease_key(aggregate_type, aggregate_id), holder.encode(), ttl_s=ttl_s
    )
    sli.observe(
        sli.LEASE_ACQUISITION_DURATION,
        time.perf_counter() - started,
        {
            "aggregate_type": aggregate_type,
            "projector_name": projector_name,
            "outcome": "claimed" if claimed else "preempted",
        },
    )
    yield claimed
    # Deliberately no release: the TTL is the only way a lease ends.
