"""Issuer conventions: the reserved prefixes of ``metadata.issued_by``.

Each prefix constrains only its leading segment(s); everything after is opaque. Validators
never cap the number of segments (``user:system:emergency_correction:eng-42`` is valid).
"""

from __future__ import annotations

__all__ = [
    "BRIDGE_PREFIX",
    "FRAMEWORK_PREFIX",
    "OBSERVER_PREFIX",
    "PROJECTOR_PREFIX",
    "SYSTEM_PREFIX",
    "USER_BADGE_PREFIX",
    "USER_PREFIX",
    "is_bridge_issuer",
    "is_framework_issuer",
    "is_observer_issuer",
    "is_projector_issuer",
    "is_recognized_issuer",
    "is_system_issuer",
    "is_user_issuer",
]

FRAMEWORK_PREFIX = "framework:"
"""Framework projectors (P1/P2/P3) and infrastructure; from the seed's issuer table."""
OBSERVER_PREFIX = "observer:"
"""Scheduled observers, ``observer:{name}``."""
PROJECTOR_PREFIX = "projector:"
"""Application projectors emitting events as a side effect, ``projector:{name}``."""
USER_PREFIX = "user:"
"""Any user-originated issuer (badge scans and system components)."""
USER_BADGE_PREFIX = "user:badge:"
"""An operator action via badge scan, ``user:badge:{id}``."""
SYSTEM_PREFIX = "user:system:"
"""Application-mediated, non-operator-specific, ``user:system:{component}[:...]``."""
BRIDGE_PREFIX = "bridge:"
"""Gateways translating worker results, ``bridge:{worker_type}``."""


def _has_scope(issued_by: str, prefix: str) -> bool:
    # The prefix must be followed by a non-empty named scope; what follows it is opaque.
    return issued_by.startswith(prefix) and len(issued_by) > len(prefix)


def is_framework_issuer(issued_by: str) -> bool:
    """True for ``framework:{name}`` (any suffix)."""
    return _has_scope(issued_by, FRAMEWORK_PREFIX)


def is_observer_issuer(issued_by: str) -> bool:
    """True for ``observer:{name}`` (any suffix)."""
    return _has_scope(issued_by, OBSERVER_PREFIX)


def is_projector_issuer(issued_by: str) -> bool:
    """True for ``projector:{name}`` (any suffix)."""
    return _has_scope(issued_by, PROJECTOR_PREFIX)


def is_user_issuer(issued_by: str) -> bool:
    """True for any ``user:...`` issuer, badge or system, with any number of segments."""
    return _has_scope(issued_by, USER_PREFIX)


def is_system_issuer(issued_by: str) -> bool:
    """True only for ``user:system:{component}[:...]``: a strict subcheck of is_user_issuer.

    Code paths that must refuse operator-initiated commands use this, not is_user_issuer.
    """
    return _has_scope(issued_by, SYSTEM_PREFIX)


def is_bridge_issuer(issued_by: str) -> bool:
    """True for ``bridge:{worker_type}`` (any suffix)."""
    return _has_scope(issued_by, BRIDGE_PREFIX)


def is_recognized_issuer(issued_by: str) -> bool:
    """True when ``issued_by`` carries one of the six reserved prefixes (framework, observer,
    projector, user:badge, user:system, bridge) followed by a non-empty scope."""
    return (
        is_framework_issuer(issued_by)
        or is_observer_issuer(issued_by)
        or is_projector_issuer(issued_by)
        or _has_scope(issued_by, USER_BADGE_PREFIX)
        or is_system_issuer(issued_by)
        or is_bridge_issuer(issued_by)
    )
