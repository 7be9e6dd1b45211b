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
from heddle.advisor.causes import Cause
from heddle.advisor.errors import (
    AdvisorError,
    ReportExistsError,
    SizingError,
    TwinError,
    WorkloadError,
)
from heddle.advisor.settings import AdvisorSettings
from heddle.advisor.value import request_values
from heddle.advisor.workload import WorkloadProfile, analyze

__all__ = [
    "AdvisorError",
    "AdvisorReport",
    "AdvisorSettings",
    "Candidate",
    "Cause",
    "Purchase",
    "ReportExistsError",
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
    "request_values",
    "serves_personal_locally",
]
