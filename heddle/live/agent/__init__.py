"""heddle.live.agent: the node agent (probes, capacity reports, executors, drain)."""

from heddle.live.agent.executors import (
    EchoExecutor,
    ExecutionError,
    Executor,
    ExecutorRegistry,
    Progress,
    SleepExecutor,
    WorkerExecutor,
    default_registry,
)
from heddle.live.agent.probe import MachineSample, Probe, guess_device
from heddle.live.agent.runtime import Agent
from heddle.live.agent.settings import AgentSettings, agent_settings, run_agent

__all__ = [
    "Agent",
    "AgentSettings",
    "EchoExecutor",
    "ExecutionError",
    "Executor",
    "ExecutorRegistry",
    "MachineSample",
    "Probe",
    "Progress",
    "SleepExecutor",
    "WorkerExecutor",
    "agent_settings",
    "default_registry",
    "guess_device",
    "run_agent",
]
