"""Policy settings: the objective's weights, the burst rule's thresholds and the solver limits.

A policy is plain frozen data. Its `name` picks the algorithm from the registry in
`heddle.optimizer.engine` ("optimal", "fast", "round-robin", "least-loaded", "ray-hybrid",
"cheapest"); every other field has a documented default so `Policy()` is a sensible setup.
All money is in US dollars, all times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DETERMINISTIC_WALL_FACTOR", "DETERMINISTIC_WALL_SLACK_S", "POLICY_NAMES", "Policy"]

DETERMINISTIC_WALL_FACTOR = 4.0
"""Wall-clock guard on a deterministic-time CP-SAT solve (a heavily loaded machine may run
deterministic time slower than real seconds; past this the answer may depend on load)."""

DETERMINISTIC_WALL_SLACK_S = 5.0
"""Added to that guard so short limits survive a busy machine (measured: 0.05 deterministic
seconds took up to ~0.5 s wall on the project's shared 2-core machine)."""

POLICY_NAMES: tuple[str, ...] = (
    "optimal",
    "fast",
    "round-robin",
    "least-loaded",
    "ray-hybrid",
    "cheapest",
)
"""Every policy name `place()` accepts (the registry in engine.py is checked against it)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Which algorithm to run and how to weigh the objective's parts.

    Defaults are chosen so one second of lateness (1 cent) outweighs the marginal energy of
    running a 7-8B model for minutes on a laptop (~0.002 cents/s at 30 W and $0.15/kWh) and
    a missed deadline (5 cents) outweighs a typical small API call (~0.1-1 cent).
    """

    name: str = "optimal"
    # --- objective weights ---------------------------------------------------------------
    cloud_weight: float = 1.0  # multiplies cloud spend (API tokens, instance hours)
    energy_weight: float = 1.0  # multiplies local marginal energy cost
    lateness_usd_per_s: float = 0.01  # per second past the deadline, times (1 + priority)
    deadline_miss_usd: float = 0.05  # once per missed deadline, times (1 + priority)
    eviction_usd: float = 0.01  # evicting resident models on a node (reload cost later)
    defer_usd: float = 0.02  # waiting for the next call instead of running now (> eviction_usd)
    stranded_defer_usd: float = 1.0  # deferring a task no local node can ever run (cloud-only)
    # --- cloud burst rule ----------------------------------------------------------------
    burst_backlog_threshold_s: float = 120.0  # a local wait longer than this allows a burst
    allow_unbudgeted_cloud: bool = False  # tasks without a budget account may use the cloud
    # --- laptop courtesy -----------------------------------------------------------------
    battery_heavy_seconds: float = 10.0  # on battery, refuse work predicted to run longer
    battery_heavy_memory_gb: float = 4.0  # on battery, refuse work needing more new memory
    # --- capacities of cloud targets per call --------------------------------------------
    instance_slots_per_gpu: int = 4  # concurrent requests a rented GPU takes in one call
    # --- solver --------------------------------------------------------------------------
    time_limit_s: float = 1.0  # CP-SAT limit per call (the incumbent answers if nothing better)
    deterministic: bool = True  # limit CP-SAT by deterministic time (reproducible on any load);
    #   the wall clock then only caps it at FACTOR x time_limit_s + SLACK
    num_workers: int = 2  # CP-SAT search workers (the project's machines have 2 cores)
    random_seed: int = 0  # CP-SAT seed (and seed of ray-hybrid's tie breaking)
    relative_gap: float = 0.0  # CP-SAT stops once within this fraction of its bound (0: prove)
    explain: bool = True  # build per-decision explanations (the twin may switch them off)
