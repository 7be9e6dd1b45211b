"""SLI observations: three OpenTelemetry-compatible histograms, recorded through a Recorder.

Applications install one Recorder at start-up with install_recorder(); the default does
nothing, so the hot path pays one global lookup and one call per observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "COMMAND_HANDLE_DURATION",
    "DISPATCHER_FAN_OUT_DURATION",
    "LEASE_ACQUISITION_DURATION",
    "CapturingRecorder",
    "NoOpRecorder",
    "Observation",
    "Recorder",
    "get_recorder",
    "install_recorder",
    "is_recording",
    "observe",
]

COMMAND_HANDLE_DURATION = "command_handle_duration"
"""Seconds in CommandHandler.handle; labels aggregate_type, command_type, outcome
(success / rejected / concurrency_error / error)."""
DISPATCHER_FAN_OUT_DURATION = "dispatcher_fan_out_duration"
"""Seconds to run every projector on one event; label aggregate_type."""
LEASE_ACQUISITION_DURATION = "lease_acquisition_duration"
"""Seconds to claim a finalization lease; labels aggregate_type, projector_name,
outcome (claimed / preempted)."""


class Recorder(Protocol):
    """Anything that accepts histogram observations (an OpenTelemetry adapter, a test spy)."""

    def observe(self, name: str, value_s: float, labels: Mapping[str, str]) -> None: ...


class NoOpRecorder:
    """The default: drops every observation."""

    def observe(self, name: str, value_s: float, labels: Mapping[str, str]) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Observation:
    name: str
    value_s: float
    labels: Mapping[str, str]


@dataclass(slots=True)
class CapturingRecorder:
    """Keeps every observation in memory, for tests and debugging."""

    observations: list[Observation] = field(default_factory=list)

    def observe(self, name: str, value_s: float, labels: Mapping[str, str]) -> None:
        self.observations.append(Observation(name, value_s, dict(labels)))

    def named(self, name: str) -> list[Observation]:
        return [obs for obs in self.observations if obs.name == name]


_recorder: Recorder = NoOpRecorder()


def install_recorder(recorder: Recorder) -> Recorder:
    """Make ``recorder`` receive every observation; returns the one it replaces."""
    global _recorder
    previous, _recorder = _recorder, recorder
    return previous


def is_recording() -> bool:
    """False while the no-op default is installed: hot paths skip timing entirely."""
    return not isinstance(_recorder, NoOpRecorder)


def get_recorder() -> Recorder:
    return _recorder


def observe(name: str, value_s: float, labels: Mapping[str, str]) -> None:
    """Send one observation to the installed recorder."""
    _recorder.observe(name, value_s, labels)
