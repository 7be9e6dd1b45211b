"""The scheduling core the control plane drives: heddle.optimizer's shared one once it has
landed, else the stand-in with the same surface (interim_core.py)."""

from __future__ import annotations

try:
    from heddle.optimizer.scheduling import CoreSettings, SchedulingCore
except ImportError:  # the shared core has not landed yet
    from heddle.live.control.interim_core import CoreSettings, SchedulingCore

__all__ = ["CoreSettings", "SchedulingCore"]
