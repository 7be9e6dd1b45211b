"""Whose request is it: a cluster user asks on its own subjects (`wire.USER`,
``heddle.v1.user.<user>.<what>``), which nats-server lets each user publish only as itself,
so the name in the subject is the requester the server authenticated. Such a request sees
only that user's jobs: a job belongs to the user who submitted it first (its
``JobSubmitted`` owner is `owner_tag(user)`, kept in the log, so it survives a restart).

Requests on the shared subjects (``heddle.v1.submit``, ``heddle.v1.query.status``...) come
from the cluster's admin, its gateway, or anyone on a nats-server without access control,
and see everything, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from heddle.live import protocol as wire

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["owner_tag", "owns_job", "owns_task", "requester", "user_subjects"]

_USER_TOKEN = wire.USER.split(".").index("{user}")


def user_subjects() -> dict[str, str]:
    """What -> the wildcard subject the control plane listens on for every user."""
    return {what: wire.subject(wire.USER, user="*", what=what) for what in wire.USER_REQUESTS}


def requester(msg: Any) -> str | None:
    """The user a request came from (its ``USER`` subject's name), or None on a shared subject."""
    parts = msg.subject.split(".")
    if len(parts) == len(wire.USER.split(".")) and msg.subject.startswith(wire.SUBJECT_PREFIX + ".user."):
        return parts[_USER_TOKEN]
    return None


def owner_tag(user: str) -> str:
    """A job's recorded owner when a cluster user submitted it: not a name a client can pick
    on the shared subject by accident (client ids hold no ':')."""
    return f"user:{user}"


def owns_job(plane: ControlPlane, user: str | None, job_id: str) -> bool:
    """May this requester see the job? (None: a shared-subject requester sees every job.)"""
    if user is None:
        return True
    job = plane.journal.jobs.get(job_id)
    return job is not None and job.owner == owner_tag(user)


def owns_task(plane: ControlPlane, user: str | None, task_id: str) -> bool:
    """May this requester act on the task (one in memory, of a job it owns)?"""
    if user is None:
        return True
    live = plane.tasks.get(task_id)
    return live is not None and owns_job(plane, user, live.job_id)
