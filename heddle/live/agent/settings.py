"""The agent's settings: one validated model built by the CLI from CLI > env > file > defaults."""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heddle.config import Settings
from heddle.live.cluster.join import Credentials
from heddle.live.protocol import ID_PATTERN, MeasuredDevice

if TYPE_CHECKING:
    from heddle.live.agent.executors import Executor

__all__ = ["AgentSettings", "agent_settings", "default_node_id", "default_owner", "run_agent"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""nats-server's default port on this machine (what `heddle up` listens on by default)."""
DEFAULT_REPORT_EVERY_S = 2.0
"""Capacity report interval: the control plane declares a node lost after 3 missed reports."""
DEFAULT_DRAIN_DEADLINE_S = 30.0
"""In-flight work gets this long to finish on a drain before it is cut and reported cancelled."""


def default_node_id() -> str:
    """The host name, reduced to one NATS subject token ("studio.local" -> "studio-local")."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()).strip("-") or "node"


def default_owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "owner"


class AgentSettings(BaseModel):
    """Everything one agent process is configured with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nats_url: str = DEFAULT_NATS_URL
    node_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=128)] = Field(default_factory=default_node_id)
    agent_id: Annotated[str, Field(pattern=ID_PATTERN, max_length=128)] | None = None  # None: node_id
    device: str | None = None  # catalog device id; None: guessed from the chip name
    slots: Annotated[int, Field(ge=1, le=1024)] = Field(default_factory=lambda: os.cpu_count() or 1)
    queue_limit: Annotated[int, Field(ge=0)] | None = None  # accepted beyond free slots; None: = slots
    owner: Annotated[str, Field(min_length=1)] = Field(default_factory=default_owner)
    trusted_owners: tuple[str, ...] = ()
    processors: tuple[str, ...] = ()  # modules processor steps may come from; () = any
    labels: dict[str, str] = Field(default_factory=dict)
    report_every_s: Annotated[float, Field(gt=0)] = DEFAULT_REPORT_EVERY_S
    drain_deadline_s: Annotated[float, Field(gt=0)] = DEFAULT_DRAIN_DEADLINE_S
    task_timeout_s: Annotated[float, Field(gt=0)] | None = None  # when an assignment names none
    reserved_memory_gb: Annotated[float, Field(ge=0)] = 0.0
    # burn steps pace themselves to this share of one core (the speed probe measures them
    # paced); None: unpaced. Other processor steps are never paced.
    cpu_limit: Annotated[float, Field(gt=0, le=1)] | None = None
    credentials: Credentials | None = None  # this node's login on the cluster; None: no access control
    # heddle's data dir: the machine benchmark's cache and the LLM speed records (None: neither)
    benchmark_dir: Path | None = None
    measured: MeasuredDevice | None = None  # the figures, once measured (heddle.live.agent.benchmark)

    def auth_options(self) -> dict:
        """``nats.connect`` arguments that log in as this node (its own inbox prefix)."""
        return self.credentials.auth_options() if self.credentials is not None else {}

    @model_validator(mode="after")
    def _known_device(self) -> AgentSettings:
        if self.device is not None:
            from heddle.models import catalog

            catalog.device(self.device)  # UnknownIdError names the id and suggests close ones
        return self

    @property
    def sender(self) -> str:
        return self.agent_id or self.node_id

    @property
    def local_queue(self) -> int:
        return self.slots if self.queue_limit is None else self.queue_limit


def _split(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip() for item in items if item.strip()]


def _labels(value: dict[str, str] | str | None) -> dict[str, str]:
    if value is None or isinstance(value, dict):
        return dict(value or {})
    labels = {}
    for item in _split(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"labels: expected key=value pairs separated by commas, got {item!r}")
        labels[key.strip()] = val.strip()
    return labels


def agent_settings(settings: Settings) -> AgentSettings:
    """The agent's settings from heddle's merged settings (CLI > env > file > defaults).

    Raises pydantic's ValidationError or ValueError naming the setting; the CLI reports it.
    """
    given = {
        "nats_url": settings.nats_url,
        "node_id": settings.node_id,
        "device": settings.device,
        "slots": settings.slots,
        "owner": settings.owner,
        "report_every_s": settings.report_every_s,
        "drain_deadline_s": settings.drain_deadline_s,
        "cpu_limit": settings.cpu_limit,
    }
    return AgentSettings(
        **{k: v for k, v in given.items() if v is not None},
        trusted_owners=tuple(_split(settings.trust)),
        processors=tuple(_split(settings.processors)),
        labels=_labels(settings.labels),
        benchmark_dir=settings.data_dir,
    )


def run_agent(settings: AgentSettings, executors: Sequence[Executor] = ()) -> int:
    """Run an agent until it has left; returns the exit code.

    The shipped executors (echo, sleep, burn, processor) are registered first, then
    ``executors`` (LLM backends), which may take over a kind.
    """
    import asyncio

    from heddle.live.agent.executors import default_registry
    from heddle.live.agent.probe import Probe, guess_device
    from heddle.live.agent.runtime import Agent

    probe = Probe(measure_speed=True, cpu_limit=settings.cpu_limit)
    if settings.device is None:
        settings = settings.model_copy(update={"device": guess_device(probe.chip)})
    if settings.device is None and settings.benchmark_dir is not None:
        from heddle.live.agent.benchmark import measured_device

        measured = measured_device(settings.benchmark_dir, probe.chip, probe.speed_relative)
        settings = settings.model_copy(update={"measured": measured})
    registry = default_registry(settings.slots, settings.processors, cpu_limit=settings.cpu_limit,
                                speed=probe.speed)
    for executor in executors:
        registry.register(executor)
    perf_log = None
    if settings.benchmark_dir is not None:
        from heddle.live.agent.perflog import RECORDS_NAME, PerfLog

        perf_log = PerfLog(settings.benchmark_dir / RECORDS_NAME, settings.node_id, settings.device,
                           settings.measured)

    async def run() -> int:
        import gc

        from heddle.live.control.stalls import from_env

        stats = from_env(f"agent-{settings.node_id}")  # HEDDLE_LOOP_STATS: a debug mode
        gc.collect()
        gc.freeze()  # start-up's objects are never scanned again: a full collection of them held the loop ~150 ms
        agent = Agent(settings, registry, probe, perf_log)
        agent.stats = stats  # stage instants of each task (None: off)
        code = await agent.run()
        if stats is not None:
            stats.write()
        return code

    return asyncio.run(run())
