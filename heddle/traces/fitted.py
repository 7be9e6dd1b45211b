"""Token-length distributions fitted to the Azure LLM inference traces 2023 (lognormal).

Each constant is scipy.stats.lognorm.fit(tokens, floc=0) on one column of one trace, stored
as (mu, sigma) of log(tokens). Source: Azure/AzurePublicDataset AzureLLMInferenceTrace_conv
and _code (2023-11-16, about one hour each), CC-BY 4.0, Patel et al., "Splitwise", ISCA 2024.
A test refits them from the Azure CSVs kept in tests/data/azure/ so the numbers cannot
drift from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AZURE_CODE_OUTPUT",
    "AZURE_CODE_PROMPT",
    "AZURE_CONV_OUTPUT",
    "AZURE_CONV_PROMPT",
    "TOKEN_PROFILES",
    "LogNormal",
    "fit_lognormal",
]


@dataclass(frozen=True, slots=True)
class LogNormal:
    """log(X) ~ Normal(mu, sigma); samples are rounded and clipped to [minimum, maximum]."""

    mu: float
    sigma: float
    minimum: int = 1
    maximum: int = 32_768
    source: str = ""

    @property
    def mean(self) -> float:
        """Mean of the unclipped distribution."""
        return float(np.exp(self.mu + self.sigma**2 / 2))

    @property
    def median(self) -> float:
        return float(np.exp(self.mu))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        draws = np.rint(rng.lognormal(self.mu, self.sigma, n))
        return np.clip(draws, self.minimum, self.maximum).astype(np.int64)


def fit_lognormal(tokens: np.ndarray, source: str = "", maximum: int = 32_768) -> LogNormal:
    """Maximum-likelihood lognormal fit with the location fixed at 0 (tokens must be > 0)."""
    from scipy import stats  # slow to import (~1 s): only fitting needs it

    values = np.asarray(tokens, dtype="float64")
    if len(values) < 2 or (values <= 0).any():
        raise ValueError("need at least two token counts, all > 0")
    sigma, _, scale = stats.lognorm.fit(values, floc=0)
    return LogNormal(float(np.log(scale)), float(sigma), maximum=maximum, source=source)


_SRC = "lognorm fit to Azure LLM inference trace 2023 ({}), column {}"
AZURE_CONV_PROMPT = LogNormal(6.6333, 0.9852, maximum=16_384,
                              source=_SRC.format("conv, 19,366 requests", "ContextTokens"))
"""Conversation prompts: median ~760 tokens (data max 14,050; capped at 16k)."""
AZURE_CONV_OUTPUT = LogNormal(5.0190, 0.8590, maximum=2_048,
                              source=_SRC.format("conv, 19,366 requests", "GeneratedTokens"))
"""Conversation outputs: median ~151 tokens (data max 1,000)."""
AZURE_CODE_PROMPT = LogNormal(6.9986, 1.3602, maximum=16_384,
                              source=_SRC.format("code, 8,819 requests", "ContextTokens"))
"""Code-completion prompts: median ~1,100 tokens (data max 7,437)."""
AZURE_CODE_OUTPUT = LogNormal(2.7882, 0.8472, maximum=2_048,
                              source=_SRC.format("code, 8,819 requests", "GeneratedTokens"))
"""Code-completion outputs: median ~16 tokens (data max 1,899)."""

TOKEN_PROFILES: dict[str, tuple[LogNormal, LogNormal]] = {
    "conv": (AZURE_CONV_PROMPT, AZURE_CONV_OUTPUT),
    "code": (AZURE_CODE_PROMPT, AZURE_CODE_OUTPUT),
}
"""Named (prompt, output) token distributions for `heddle trace synth --tokens`."""
