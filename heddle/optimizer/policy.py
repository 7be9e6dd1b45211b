"""Policy settings: the objective's weights, the burst rule's thresholds and the solver limits.

A policy is plain frozen data. Its `name` picks the algorithm from the registry in
`heddle.optimizer.engine` ("optimal", "fast", "round-robin", "least-loaded", "ray-hybrid",
"cheapest"); every other field has a documented default so `Policy()` is a sensible setup.
All money is in US dollars, all times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["POLICY_NAMES", "WAIT_USD_PER_TASK_HOUR", "Policy"]

POLICY_NAMES: tuple[str, ...] = (
    "optimal",
    "fast",
    "round-robin",
    "least-loaded",
    "ray-hybrid",
    "cheapest",
)
"""Every policy name `place()` accepts (the registry in engine.py is checked against it)."""


WAIT_USD_PER_TASK_HOUR: tuple[float, ...] = (2.0, 4.0, 8.0)
"""Default price of waiting for a result, USD per task-hour at priorities 0, 1 and 2: roughly
what a person's waiting on an assistant is worth to a household or small office. At priority
0 an answer 20 s sooner is worth 1.1 cents: more than a desktop's marginal energy for those
minutes of work, about one small API call. Chosen on the shipped fleets: with it "optimal" is
never dominated by a baseline on cost, p95 latency and misses (docs/optimizer.md)."""


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
    wait_usd_per_task_hour: tuple[float, ...] = WAIT_USD_PER_TASK_HOUR  # the price of waiting
    #   for a result, by priority (0, 1, 2, ...; past the end the last): every option pays it
    #   from now until its predicted finish, so a faster or idle node wins when it saves time
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
    time_limit_s: float = 0.5  # CP-SAT limit per call (the incumbent answers if nothing better);
    #   deterministic seconds unless `deterministic` is off (about 0.3-1.5 wall s on 2 cores)
    deterministic: bool = True  # one worker limited by deterministic time: the same answer on
    #   any load (several workers race, and a wall-clock limit stops at a load-dependent point)
    num_workers: int = 2  # CP-SAT search workers when `deterministic` is off
    random_seed: int = 0  # CP-SAT seed (and seed of ray-hybrid's tie breaking)
    relative_gap: float = 0.01  # "optimal" stops once within this fraction of the best bound,
    #   measured on the objective less the deferrals of tasks nothing can place (0: prove)
    explain: bool = True  # build per-decision explanations (the twin may switch them off)
