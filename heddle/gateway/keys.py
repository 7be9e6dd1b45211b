"""API keys: who is asking decides the rules. Each key maps to an owner, a default privacy
tag, a budget account and the tiers it may use; a request may tighten these with headers
(`HEADERS`), never loosen them.

Keys file (YAML)::

    keys:
      - key: sk-alice-7f3a9c        # what the app sends as its API key (Bearer token)
        owner: alice                # whose work it is: personal work runs on alice's nodes
        privacy: personal           # default and floor: public < sensitive < personal
        account: alice              # budget account cloud spend is charged to
        tiers: [local, standard]    # tiers a request may ask for (default: all)
        deadline_s: 120             # default deadline of its requests (default: none)
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heddle.gateway.errors import GatewayError
from heddle.models import catalog
from heddle.models.ids import Privacy, Tier
from heddle.models.yamlsource import format_validation_error, load_yaml, read_text

__all__ = ["HEADERS", "Caller", "KeyRing", "KeysFileError", "Rules", "load_keys"]

PRIVACY_ORDER = {Privacy.PUBLIC: 0, Privacy.SENSITIVE: 1, Privacy.PERSONAL: 2}
"""How tight each privacy tag is: a request may only move up this order."""
HEADERS = {
    "privacy": "X-Heddle-Privacy",  # public / sensitive / personal: only tighter than the key's
    "deadline": "X-Heddle-Deadline",  # seconds from now: only sooner than the key's
    "tier": "X-Heddle-Tier",  # local / standard / frontier: one of the key's tiers
    "max_wait": "X-Heddle-Max-Wait",  # seconds to wait for a place before a 429 (<= the gateway's)
}
"""Request headers that tighten a key's rules (documented in docs/gateway.md)."""
Ident = Annotated[str, Field(min_length=1, max_length=200)]


class KeysFileError(ValueError):
    """The keys file cannot be used; the message names the file, line and field.
    `heddle gateway` prints it and does not start."""


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Field(min_length=8, max_length=400)]
    owner: Ident
    privacy: Privacy = Privacy.PUBLIC
    account: Ident | None = None
    tiers: tuple[Tier, ...] = tuple(Tier)
    deadline_s: Annotated[float, Field(gt=0)] | None = None


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[KeyEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> KeysFile:
        seen = set()
        for entry in self.keys:
            if entry.key in seen:
                raise ValueError(f"key of owner {entry.owner!r} is listed twice")
            seen.add(entry.key)
        return self


@dataclass(frozen=True, slots=True)
class Caller:
    """What a key allows."""

    owner: str
    privacy: Privacy
    account: str | None
    tiers: tuple[Tier, ...]
    deadline_s: float | None


@dataclass(frozen=True, slots=True)
class Rules:
    """What one request runs under: the key's rules, tightened by its headers."""

    owner: str
    privacy: Privacy
    account: str | None
    tier: Tier | None
    deadline_s: float | None
    max_wait_s: float


class KeyRing:
    def __init__(self, entries: list[KeyEntry]) -> None:
        self._callers = {e.key: Caller(e.owner, e.privacy, e.account, e.tiers, e.deadline_s)
                         for e in entries}

    def caller(self, authorization: str | None, api_key: str | None = None) -> Caller:
        """The caller an ``Authorization: Bearer <key>`` header names (what OpenAI and Ollama
        clients send, and Claude Code given ANTHROPIC_AUTH_TOKEN), else an ``X-API-Key: <key>``
        header (what Anthropic's clients send); 401 otherwise."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            key = api_key or ""
        if not key.strip():
            raise GatewayError(401, "no API key: send 'Authorization: Bearer <key>' or "
                               "'X-API-Key: <key>' (the keys are in the gateway's keys file)",
                               "missing_api_key")
        key = key.strip()
        for known, caller in self._callers.items():  # constant-time per comparison
            if hmac.compare_digest(known.encode(), key.encode()):
                return caller
        raise GatewayError(401, "unknown API key", "invalid_api_key")

    @staticmethod
    def rules(caller: Caller, headers: dict[str, str], max_wait_s: float) -> Rules:
        """The caller's rules tightened by the request's headers (403 for a loosening)."""
        privacy = caller.privacy
        if (raw := headers.get(HEADERS["privacy"].lower())) is not None:
            asked = _enum(Privacy, raw, HEADERS["privacy"])
            if PRIVACY_ORDER[asked] < PRIVACY_ORDER[privacy]:
                raise _loosening("privacy", asked.value, privacy.value, "tighten it")
            privacy = asked
        tier = None
        if (raw := headers.get(HEADERS["tier"].lower())) is not None:
            tier = _enum(Tier, raw, HEADERS["tier"])
            if tier not in caller.tiers:
                raise GatewayError(403, f"{HEADERS['tier']}: {tier.value} is not allowed for this "
                                   f"key (allowed: {', '.join(t.value for t in caller.tiers)})",
                                   "tier_not_allowed", param=HEADERS["tier"])
        deadline = caller.deadline_s
        if (raw := headers.get(HEADERS["deadline"].lower())) is not None:
            asked_s = _seconds(raw, HEADERS["deadline"])
            if deadline is not None and asked_s > deadline:
                raise _loosening("deadline", f"{asked_s:g} s", f"{deadline:g} s", "make it sooner")
            deadline = asked_s
        wait = max_wait_s
        if (raw := headers.get(HEADERS["max_wait"].lower())) is not None:
            wait = min(_seconds(raw, HEADERS["max_wait"], zero=True), max_wait_s)
        return Rules(caller.owner, privacy, caller.account, tier, deadline, wait)

    @staticmethod
    def check_tier(caller: Caller, model: str) -> None:
        """A catalog API offer asked for by name runs at its own tier: 403 unless the key
        may use that tier (a key of local tiers never reaches a paid API by naming one)."""
        offer = catalog.api_offers().get(model)
        if offer is not None and offer.tier not in caller.tiers:
            raise GatewayError(403, f"model {model!r} is a {offer.tier.value}-tier cloud API, not "
                               f"allowed for this key (allowed tiers: "
                               f"{', '.join(t.value for t in caller.tiers)})", "tier_not_allowed",
                               param="model")


def _loosening(rule: str, asked: str, allowed: str, only: str) -> GatewayError:
    header = HEADERS[rule]
    return GatewayError(403, f"{header}: {asked} would loosen this key's {rule} ({allowed}); a "
                        f"request may only {only}", f"{rule}_loosening", param=header)


def _enum(kind, raw: str, header: str):
    try:
        return kind(raw.strip().lower())
    except ValueError:
        raise GatewayError(400, f"{header}: expected one of {', '.join(k.value for k in kind)}, "
                           f"got {raw!r}", "invalid_header", param=header) from None


def _seconds(raw: str, header: str, zero: bool = False) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 or (zero and value == 0)) or not math.isfinite(value):
        raise GatewayError(400, f"{header}: expected a number of seconds "
                           f"{'>= 0' if zero else '> 0'}, got {raw!r}", "invalid_header",
                           param=header)
    return value


def load_keys(path: Path) -> KeyRing:
    """Read a keys file; KeysFileError names the file, line and field."""
    text = read_text(path, KeysFileError, "gateway keys file")
    doc = load_yaml(text, str(path), KeysFileError)
    try:
        parsed = KeysFile.model_validate(doc.data)
    except ValidationError as exc:
        raise KeysFileError(format_validation_error(exc, doc)) from None
    return KeyRing(parsed.keys)
