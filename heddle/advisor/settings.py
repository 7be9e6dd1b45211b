"""Advisor settings: the knobs an owner may turn, validated at the boundary (CLI, config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DAYS_PER_MONTH = 365.25 / 12
"""Mean Gregorian month in days (30.4375): how daily figures become monthly ones."""


DEFAULT_DISCOUNT_RATE_ANNUAL = 0.08
"""Annual discount rate for NPV: roughly a small business's cost of capital (2020s)."""

DEFAULT_HORIZON_MONTHS = 36
"""Three years: the usual depreciation life of desktop computers (IRS MACRS 5-year class is
longer; 3 years is the common refresh cycle for small-business workstations)."""


class AdvisorSettings(BaseModel):
    """Everything `advise()` needs besides the trace and the fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_usd: float = Field(10_000.0, ge=0, description="purchase budget (USD)")
    miss_value_usd: float | None = Field(
        None, ge=0,
        description="value of one request not done in time (USD); None = its cloud price at the "
                    "requested tier (heddle.advisor.value)",
    )
    miss_value_usd_by_priority: dict[int, float] = Field(
        default_factory=dict,
        description="value of one request not done in time, per task priority (overrides the above)",
    )
    resale_usd: dict[str, float] = Field(
        default_factory=dict,
        description="node id -> what the owner would get for it used (overrides the catalog)",
    )
    discount_rate_annual: float = Field(DEFAULT_DISCOUNT_RATE_ANNUAL, ge=0, le=1)
    horizon_months: int = Field(DEFAULT_HORIZON_MONTHS, ge=1, le=120)
    electricity_usd_per_kwh: float | None = Field(
        None, ge=0, description="override the fleet's electricity price"
    )
    max_units: int = Field(2, ge=1, le=8, description="units of one device tried per candidate")
    shortlist: int = Field(6, ge=1, le=50, description="candidates replayed in the twin")
    sample_days: int = Field(
        8, ge=0, description="representative days replayed when the trace is longer (0 = all)"
    )
    bootstrap_samples: int = Field(400, ge=10, le=20_000)
    growth_scenarios_per_year: tuple[float, ...] = Field(
        (-0.2, 0.0, 0.5, 1.0),
        description="extra request-rate growth per year tried besides the trace's own trend",
    )
    electricity_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    policy: str = Field("fast", description="optimizer policy the twin uses")
    design_percentile: float = Field(
        90.0, ge=50, le=100, description="hourly-rate percentile the sizing model provisions for"
    )
    target_utilization: float = Field(0.7, gt=0, le=1, description="sizing headroom")
    sizing_time_limit_s: float = Field(5.0, gt=0)
    seed: int = 0
    workers: int = Field(2, ge=1, le=64, description="parallel twin runs")
