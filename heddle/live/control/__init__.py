"""heddle.live.control: the control plane (`heddle scheduler`, also started by `heddle up`).

It builds FleetState from capacity reports, takes submissions, drives the shared scheduling
core and `place()`, dispatches with acknowledgement, tracks in-flight work, re-places the
work of lost nodes, enforces timeouts, and records every task's life on JetStream.
"""

from heddle.live.control.journal import Journal, JournalStats
from heddle.live.control.plane import ControlPlane
from heddle.live.control.settings import ControlSettings
from heddle.live.control.submission import SubmissionError, SubmittedTask, parse_submission

__all__ = [
    "ControlPlane",
    "ControlSettings",
    "Journal",
    "JournalStats",
    "SubmissionError",
    "SubmittedTask",
    "parse_submission",
]
