"""Fleet dynamics for a what-if run: nodes that join, leave, drain, fail, throttle, or go on
battery at given times, plus optional random failures.

A scenario is a YAML file validated with pydantic (extra fields forbidden); an error names the
file and the field path (for example `events.2.speed_factor`). Random failures are expanded
into timed events with the run's `numpy.random.Generator`, so a seed fixes them.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heddle.models import Fleet, ThermalState
from heddle.sim.errors import ScenarioError

__all__ = ["Action", "FleetEvent", "RandomFailures", "Scenario", "load_scenario", "shipped_scenario_path"]

_SCENARIO_DIR = Path(__file__).resolve().parent.parent / "data" / "scenarios"


class Action(str, Enum):
    JOIN = "join"  # node (re)appears, empty and cold; may bring a new device (device, memory_gb)
    LEAVE = "leave"  # node goes away now; its running and queued tasks are retried elsewhere
    FAIL = "fail"  # node dies mid-task; same effect as leave, counted as a failure
    DRAIN = "drain"  # finishes what it has, accepts nothing new
    BATTERY = "battery"  # unplugged: the optimizer's laptop courtesy applies
    AC = "ac"  # plugged back in
    THROTTLE = "throttle"  # speed_factor (and thermal state) change; 1.0 restores full speed
    PACE = "pace"  # its CPU runs at speed_factor, the scheduler not knowing (other work on the machine)
    THERMAL = "thermal"  # thermal state changes only


class FleetEvent(BaseModel):
    """One timed change to one node."""

    model_config = ConfigDict(extra="forbid")

    at_s: float = Field(ge=0, description="simulated seconds from the start of the run")
    node: str = Field(min_length=1)
    action: Action
    speed_factor: float | None = Field(default=None, gt=0, le=4)
    thermal: ThermalState | None = None
    device: str | None = None  # join only: a catalog device id for a node not in the fleet
    memory_gb: float | None = Field(default=None, gt=0)
    owner: str | None = None
    slots: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _fields_fit_action(self) -> FleetEvent:
        if self.action in (Action.THROTTLE, Action.PACE) and self.speed_factor is None:
            raise ValueError(f"action {self.action.value!r} needs speed_factor")
        if self.action is Action.THERMAL and self.thermal is None:
            raise ValueError("action 'thermal' needs thermal")
        if self.device is not None and self.action is not Action.JOIN:
            raise ValueError("device is only allowed with action 'join'")
        if self.device is not None and (self.memory_gb is None or self.owner is None):
            raise ValueError("a join with a new device needs memory_gb and owner")
        return self


class RandomFailures(BaseModel):
    """Nodes fail after exponential up-times (mean mtbf_s) and rejoin after mttr_s."""

    model_config = ConfigDict(extra="forbid")

    mtbf_s: float = Field(gt=0)
    mttr_s: float = Field(default=300.0, ge=0)
    nodes: list[str] = Field(default_factory=list)  # empty = every node in the fleet
    until_s: float | None = Field(default=None, gt=0)  # default: the last arrival


class Scenario(BaseModel):
    """A what-if scenario: timed fleet events and optional random failures."""

    model_config = ConfigDict(extra="forbid")

    name: str = "scenario"
    description: str = ""
    absent_at_start: list[str] = Field(default_factory=list)  # fleet nodes that join later
    events: list[FleetEvent] = Field(default_factory=list)
    random_failures: RandomFailures | None = None

    def check_against(self, fleet: Fleet, origin: str = "scenario") -> None:
        """Every node named must be in the fleet or brought by an earlier join with a device."""
        known = {n.id for n in fleet.nodes}
        for name in self.absent_at_start:
            if name not in known:
                raise ScenarioError(f"{origin}: absent_at_start names node {name!r}, not in fleet {fleet.name!r}")
        for i, ev in sorted(enumerate(self.events), key=lambda p: p[1].at_s):
            if ev.device is not None:
                known.add(ev.node)
            elif ev.node not in known:
                raise ScenarioError(
                    f"{origin}: events.{i}.node is {ev.node!r}, which is not in fleet "
                    f"{fleet.name!r} (a new node needs action 'join' with a device)"
                )
        if self.random_failures:
            for name in self.random_failures.nodes:
                if name not in known:
                    raise ScenarioError(f"{origin}: random_failures.nodes names unknown node {name!r}")

    def timeline(self, fleet: Fleet, end_s: float, rng: np.random.Generator) -> list[FleetEvent]:
        """All events in time order, random failures expanded with `rng` up to `end_s`."""
        events = list(self.events)
        rf = self.random_failures
        if rf is not None:
            names = rf.nodes or sorted(n.id for n in fleet.nodes)
            until = rf.until_s if rf.until_s is not None else end_s
            for name in names:
                t = float(rng.exponential(rf.mtbf_s))
                while t < until:
                    events.append(FleetEvent(at_s=t, node=name, action=Action.FAIL))
                    events.append(FleetEvent(at_s=t + rf.mttr_s, node=name, action=Action.JOIN))
                    t += rf.mttr_s + float(rng.exponential(rf.mtbf_s))
        # stable: events at the same instant keep file order
        return sorted(events, key=lambda e: e.at_s)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}:{where} not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping with 'events', got {type(raw).__name__}")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ScenarioError(f"{path}: field {field}: {err['msg']}") from exc


def shipped_scenario_path(name: str = "demo") -> Path:
    """Path of a scenario shipped as package data (heddle/data/scenarios/NAME.yaml)."""
    path = _SCENARIO_DIR / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in _SCENARIO_DIR.glob("*.yaml"))
        raise ScenarioError(f"no shipped scenario {name!r}; shipped: {names}")
    return path
