"""The Work page's data: jobs and tasks from the control plane's status query, and one task's
life from the event log (placed where, by whom, why, predicted against actual times).

Only public surfaces are read: `ControlClient.status()` for the lists and
`heddle.events.JetStreamEventLog.load()` for a task's events (read-only: the UI never creates
a stream). Fields the control plane adds later (an explanation, shadow predictions) show up
in the event details without a change here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["STATES", "event_log", "history", "overview", "story"]

STATES = ("submitted", "placed", "started", "completed", "failed", "rejected", "cancelled")
"""Task states in lifecycle order (the control plane's status counts use these words)."""
TASK_AGGREGATE = "Task"
"""heddle.events.TaskAggregate.aggregate_type (named here to keep the import off the page path)."""
HIDDEN_DETAILS = ("result", "timings", "attempt", "target", "node", "reason", "est_seconds", "retryable",
                  "job_id", "model", "owner", "privacy", "started_at", "spec", "submitted_at")
"""Payload fields shown in their own words rather than in the raw details column."""
UNIX_INSTANT_AFTER = 1e9
"""A number of seconds above this is an instant (2001 onwards), not a duration."""
PREDICTION_WORDS = ("predict", "shadow", "explanation", "why")
"""Payload fields whose names contain these are shown as the optimizer's reasons/predictions."""


async def overview(client: Any, job: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Counts by state, each job's counts, and up to ``limit`` tasks (one job's, or the latest)."""
    reply = await client.status(job, limit)
    counts = [(s, reply.counts.get(s, 0)) for s in STATES]
    counts += [(s, n) for s, n in sorted(reply.counts.items()) if s not in STATES]
    jobs = [(job_id, [c.get(s, 0) for s in STATES]) for job_id, c in sorted(reply.jobs.items())]
    tasks = [row.model_dump() for row in reply.tasks]
    shadow = dict(getattr(reply, "shadow", None) or {})  # once the control plane records them
    return {"counts": counts, "jobs": jobs, "tasks": tasks, "job": job,
            "refused": dict(reply.refused_messages),
            "predictions": any(t.get("predicted_s") is not None for t in tasks),
            "shadow": shadow if shadow.get("tasks") else None}


def _clock(unix_s: float | None) -> str:
    if unix_s is None:
        return "-"
    return dt.datetime.fromtimestamp(unix_s).strftime("%H:%M:%S.%f")[:-3]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if abs(value) < 0.1 else f"{value:.2f} s"


def _task_facts(spec: dict[str, Any]) -> dict[str, str]:
    """What was asked for, in words, from a submission's spec (the wire TaskSpec + executor)."""
    task, executor = spec.get("task") or {}, spec.get("executor") or {}
    facts = {"kind": str(task.get("kind", "?"))}
    if task.get("model"):
        facts["model"] = f"{task['model']} ({task.get('quant') or 'default quantization'})"
    if task.get("prompt_tokens") or task.get("output_tokens"):
        facts["tokens in / out"] = f"{task.get('prompt_tokens', 0):,} / {task.get('output_tokens', 0):,}"
    if task.get("cpu_seconds"):
        facts["CPU work"] = _seconds(task["cpu_seconds"])
    facts["privacy"] = str(task.get("privacy", "public")) + (f", {task['owner']}'s" if task.get("owner") else "")
    if task.get("deadline_s") is not None:
        facts["deadline"] = f"{task['deadline_s']:g} s after it arrives"
    if executor.get("kind"):
        facts["runs as"] = str(executor["kind"]) + (f" {executor['target']}" if executor.get("target") else "")
    return facts


def _value(value: Any) -> Any:
    """A prediction as read: an instant (Unix seconds) as a clock time, a duration in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _clock(value) if value > UNIX_INSTANT_AFTER else _seconds(value)
    return value


def _words(event_type: str, p: dict[str, Any]) -> str:
    node = p.get("node") or p.get("target") or ""
    match event_type:
        case "TaskSubmitted":
            who = f" by {p['owner']}" if p.get("owner") else ""
            return f"submitted{who} ({p.get('privacy', '?')} work)"
        case "TaskPlaced":
            return f"placed on {node}" + (f" (attempt {p['attempt']})" if "attempt" in p else "")
        case "TaskStarted":
            return f"started on {node}" if node else "started"
        case "TaskCompleted":
            return f"completed on {node}" if node else "completed"
        case "TaskFailed":
            again = "failed, will be tried again" if p.get("retryable") else "failed"
            return f"{again}: {p.get('reason', '')}"
        case _:
            return event_type.removeprefix("Task").lower()


def event_log(nc: Any) -> Any:
    """The cluster's event log, read-only (a viewer's credentials may not create streams)."""
    from heddle.events import JetStreamEventLog

    return JetStreamEventLog(nc.jetstream(), ensure_streams=False)


async def history(log: Any, task_id: str) -> dict[str, Any]:
    """One task's story from an `EventLog` (see `story`)."""
    return story(task_id, [e async for e in log.load(TASK_AGGREGATE, task_id)])


def story(task_id: str, events: list[Any]) -> dict[str, Any]:
    """One task's events in order, in plain words, with what was asked for, why it ran where
    it did (when recorded) and predicted against actual times."""
    rows, predicted, actual, why, facts = [], {}, {}, [], {}
    for e in events:
        p = dict(e.payload)
        extra = {k: v for k, v in p.items()
                 if k not in HIDDEN_DETAILS and not any(w in k for w in PREDICTION_WORDS)}
        rows.append({"when": _clock(e.occurred_at_unix_s), "what": _words(e.event_type, p),
                     "who": e.metadata.issued_by, "details": extra})
        for key, value in p.items():
            if not any(w in key for w in PREDICTION_WORDS):
                continue
            if isinstance(value, str):
                why.append(f"{key.replace('_', ' ')}: {value}")
            else:
                predicted[key.replace("_", " ")] = _value(value)
        if e.event_type == "TaskSubmitted" and isinstance(p.get("spec"), dict):
            facts = _task_facts(p["spec"])
        if e.event_type == "TaskPlaced" and p.get("reason"):  # the optimizer's explanation
            why.append(f"{p.get('target', '?')}: {p['reason']}")
        if e.event_type == "TaskPlaced" and "est_seconds" in p:
            predicted["run time"] = _seconds(p["est_seconds"])
        timings = p.get("timings") or {}
        if timings.get("finished_at") and timings.get("started_at"):
            actual["run time"] = _seconds(timings["finished_at"] - timings["started_at"])
            actual["waited at the node"] = _seconds(timings["started_at"] - timings["received_at"])
    return {"task_id": task_id, "events": rows, "predicted": predicted, "actual": actual, "why": why,
            "facts": facts}
