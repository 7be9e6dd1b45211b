"""Typed identifiers and the small enumerations every package shares."""

from __future__ import annotations

from enum import Enum
from typing import NewType

NodeId = NewType("NodeId", str)
TaskId = NewType("TaskId", str)
DeviceId = NewType("DeviceId", str)
ModelId = NewType("ModelId", str)
OfferId = NewType("OfferId", str)
OwnerId = NewType("OwnerId", str)
AccountId = NewType("AccountId", str)


class Privacy(str, Enum):
    """Privacy tag of a task: where its data may go (ARCHITECTURE rule 1)."""

    PUBLIC = "public"  # anywhere, cloud included
    SENSITIVE = "sensitive"  # any local node, never the cloud
    PERSONAL = "personal"  # only the owner's nodes or nodes the owner trusts


class Tier(str, Enum):
    """Model tier a task prefers (seed: local / standard / frontier)."""

    LOCAL = "local"
    STANDARD = "standard"
    FRONTIER = "frontier"


class TaskKind(str, Enum):
    LLM = "llm"
    PROCESSOR = "processor"


class PowerSource(str, Enum):
    AC = "ac"
    BATTERY = "battery"


class ThermalState(str, Enum):
    """macOS ProcessInfo.thermalState levels."""

    NOMINAL = "nominal"
    FAIR = "fair"
    SERIOUS = "serious"
    CRITICAL = "critical"


class NodeStatus(str, Enum):
    ACTIVE = "active"
    DRAINING = "draining"  # finishes what it has, gets nothing new
    DEPARTED = "departed"  # gone: gets nothing


class OfferKind(str, Enum):
    API = "api"  # priced per token
    INSTANCE = "instance"  # priced per hour, with start-up latency
