"""Defence in depth: the control plane re-checks each placement against the fleet's privacy
rules before it sends anything (ARCHITECTURE rule 1). `place()` already enforces them; a
refusal here is a bug, counted and logged as an error, and the attempt is not sent."""

from __future__ import annotations

from heddle.models import Node, Privacy, Task

__all__ = ["PrivacyViolationError", "check_cloud_privacy", "check_privacy", "privacy_allows"]


class PrivacyViolationError(RuntimeError):
    """A placement would break a privacy rule; the control plane refuses to dispatch it."""


def privacy_allows(task: Task, node: Node) -> bool:
    """The rule for a local node: personal work only on its owner's or a trusting node;
    sensitive and public work on any local node."""
    return task.privacy is not Privacy.PERSONAL or node.may_hold_personal_of(task.owner)


def check_privacy(task: Task, node: Node) -> None:
    if not privacy_allows(task, node):
        raise PrivacyViolationError(
            f"personal task {task.id} of owner {task.owner!r} may not run on node {node.id} "
            f"(owner {node.owner!r}, trusts {sorted(node.trusted_owners)})"
        )


def check_cloud_privacy(task: Task) -> None:
    """The rule for the cloud: public work only (a cloud call relayed by an agent included)."""
    if task.privacy is not Privacy.PUBLIC:
        raise PrivacyViolationError(f"{task.privacy.value} task {task.id} may not be sent to a cloud API")
