"""Whose request is it: a cluster user asks on its own subjects (`wire.USER`,
``heddle.v1.user.<user>.<what>``), which nats-server lets each user publish only as itself,
so the name in the subject is the requester the server authenticated. Such a request sees
only that user's jobs: a job belongs to the user who submitted it first (its
``JobSubmitted`` owner is `owner_tag(user)`, kept in the log, so it survives a restart).

Requests on the shared subjects (``heddle.v1.submit``, ``heddle.v1.query.status``...) come
from the cluster's admin, its gateway, or anyone on a nats-server without access control,
and see everything, as before. A user's tasks may name only its own owner and account
(`UserLogins`, `claim_refusal`), so its personal work is placed as its own, nobody else's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heddle.live import protocol as wire

if TYPE_CHECKING:
    from heddle.live.control.plane import ControlPlane

__all__ = ["UserLogins", "claim_refusal", "owner_tag", "owns_job", "owns_task", "requester", "user_subjects"]

logger = logging.getLogger(__name__)

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


class UserLogins:
    """Whom each cluster user submits as, its owner and account, from the users file the
    cluster's roster keeps beside it (``users.json``, no secrets; `heddle users add` writes
    it), read again whenever it changes. Without a file (`heddle scheduler` without
    ``--users``) no claim is checked."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._stamp: int | None = None
        self._users: dict[str, tuple[str, str]] = {}

    def get(self, user: str) -> tuple[str, str] | None:
        """(owner, account) of ``user``, or None if the file does not name it."""
        if self.path is None:
            return None
        try:
            stamp = self.path.stat().st_mtime_ns
            if stamp != self._stamp:
                raw = json.loads(self.path.read_text(encoding="utf-8"))["users"]
                self._users = {name: (entry.get("owner", ""), entry.get("account", "")) for name, entry in raw.items()}
                self._stamp = stamp
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("cannot read the users file %s (%s); keeping what it said before", self.path, exc)
        return self._users.get(user)


def claim_refusal(logins: UserLogins, user: str | None, tasks: list[Any]) -> str | None:
    """Why a user's submission names an owner or account not its own (the field), or None."""
    entry = logins.get(user) if user is not None else None
    if entry is None:
        return None
    owner, account = entry
    for i, item in enumerate(tasks):
        task = item.task
        if task.owner and task.owner != owner:
            return f"tasks[{i}].task.owner: {task.owner!r} is not yours (your login submits as owner {owner!r})"
        if task.account and account and task.account != account:
            return f"tasks[{i}].task.account: {task.account!r} is not yours (your login's account is {account!r})"
    return None
