"""Cluster formation and access for the live runtime: who may do what on the cluster's
nats-server (`access`), the roster of members and its join code (`roster`), joining with a
code (`join`), mDNS discovery (`discovery`), the cluster's TLS certificate (`tls`), the
services `heddle up` runs beside nats-server (`service`) and where each process on a machine
gets its credentials (`membership`). See docs/live.md, "Cluster formation and access"."""

from heddle.live.cluster.access import (
    CLUSTER_ROLES,
    AccessError,
    Member,
    cluster_auth_config,
    inbox_prefix,
    member_permissions,
)
from heddle.live.cluster.roster import Roster, new_join_code

__all__ = [
    "CLUSTER_ROLES",
    "AccessError",
    "Member",
    "Roster",
    "cluster_auth_config",
    "inbox_prefix",
    "member_permissions",
    "new_join_code",
]
