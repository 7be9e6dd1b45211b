"""The sample traces shipped as package data (heddle/data/traces/), found by name."""

from __future__ import annotations

from pathlib import Path

from heddle.traces.errors import TraceError

__all__ = ["SAMPLES_DIR", "resolve_trace", "shipped_trace_names", "shipped_trace_path"]

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "traces"
"""Where the shipped samples live; heddle/data/traces/README.md gives each one's source."""
_SUFFIX = ".parquet"


def shipped_trace_names() -> list[str]:
    """Names accepted by `shipped_trace_path`, sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in SAMPLES_DIR.glob("*" + _SUFFIX))


def shipped_trace_path(name: str = "demo") -> Path:
    """Path of a shipped sample trace: "demo", "demo-14d" or "azure-code"."""
    path = SAMPLES_DIR / (name + _SUFFIX)
    if not path.is_file():
        raise TraceError(
            f"no shipped trace named {name!r}; shipped: {', '.join(shipped_trace_names())}"
        )
    return path


def resolve_trace(name_or_path: str | Path) -> Path:
    """An existing file path as given, else the shipped sample of that name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if isinstance(name_or_path, str) and name_or_path in shipped_trace_names():
        return shipped_trace_path(name_or_path)
    raise TraceError(
        f"{name_or_path}: no such file, and not a shipped trace "
        f"({', '.join(shipped_trace_names()) or 'none shipped'})"
    )
