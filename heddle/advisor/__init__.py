"""The advisor: workload analysis, candidate fleets, ROI/TCO/payback with uncertainty, reports.

`advise(trace, fleet, settings)` is the entry point; evaluation always runs the twin
(`heddle.sim`), never a simulation of its own.
"""

from heddle.advisor.advise import (
    AdvisorReport,
    SamplingCheck,
    advise,
    check_sampling,
    recommendation_sentence,
)
from heddle.advisor.candidates import (
    Candidate,
    Purchase,
    primary_owner,
    purchase_trust,
    purchased_node,
    serves_personal_locally,
)
from heddle.advisor.errors import AdvisorError, SizingError, TwinError, WorkloadError
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.workload import WorkloadProfile, analyze

__all__ = [
    "AdvisorError",
    "AdvisorReport",
    "AdvisorSettings",
    "Candidate",
    "Purchase",
    "SamplingCheck",
    "SizingError",
    "TwinError",
    "WorkloadError",
    "WorkloadProfile",
    "advise",
    "analyze",
    "check_sampling",
    "primary_owner",
    "purchase_trust",
    "purchased_node",
    "recommendation_sentence",
    "serves_personal_locally",
]
