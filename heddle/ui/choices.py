"""What the What-if and Advice forms offer: fleets, traces, policies and scenarios, shipped
with heddle, recorded by a live cluster, or uploaded through the page.

A form posts a choice's key ("shipped:demo", "recorded:all", "live:fleet", "upload:home.yaml");
only keys in the current listing resolve, so a posted value can never name another file.
Uploads are checked with the same readers the twin uses before they are kept, and a bad
file is refused with the reader's own message (which names the file and the field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from heddle.ui.settings import UiError

__all__ = ["MAX_UPLOAD_BYTES", "POLICY_WORDS", "SCENARIO_WORDS", "Choice", "Choices"]

RECORDED_DIR = "recorded"
"""Where the live control plane records what it ran, under the data folder: a directory of
Parquet files that reads as one trace (heddle.traces.recorded)."""
LIVE_FLEET_FILE = "live-fleet.yaml"
"""The cluster's fleet as its control plane exports it, kept in the work folder."""
TRACE_SUFFIXES = (".parquet", ".htr")
"""Trace files an upload may be (docs/traces.md)."""
FLEET_SUFFIXES = (".yaml", ".yml")
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Largest upload kept (a month of a busy office's requests is well under this in Parquet)."""
POLICY_WORDS = {
    "optimal": "weighs cost, energy and deadlines with a solver (heddle's default)",
    "fast": "heddle's quick rules: nearly as good, decides in a fraction of a millisecond",
    "round-robin": "takes turns across the machines",
    "least-loaded": "picks the least busy machine, like Kubernetes",
    "ray-hybrid": "packs, then spreads, like Ray",
    "cheapest": "picks the cheapest machine or cloud offer that can do it",
}
"""Each placement policy in a few plain words (the optimizer's docs say more)."""
SCENARIO_WORDS = {"demo": "a laptop goes on battery and is drained, a machine crashes and comes back, one overheats",
                  "flaky": "every machine fails now and then (every 2 h on average) and is back 10 minutes later"}
"""The shipped scenarios in plain words (heddle/data/scenarios)."""
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    label: str
    path: str  # what the twin is given: a shipped name or a file path


class Choices:
    def __init__(self, work_dir: Path, data_dir: Path) -> None:
        self.uploads = work_dir / "uploads"
        self.live_fleet = work_dir / LIVE_FLEET_FILE
        self.recorded = data_dir.expanduser() / RECORDED_DIR

    # -- listings ---------------------------------------------------------------------------------
    def fleets(self) -> list[Choice]:
        from heddle.models.fleet import shipped_fleets

        out = [Choice("live:fleet", "the cluster's fleet as it is now", str(self.live_fleet))
               ] if self.live_fleet.exists() else []
        out += [Choice(f"shipped:{n}", f"{n} (shipped)", n) for n in shipped_fleets()]
        return out + self._uploaded("fleets", "uploaded")

    def keep_live_fleet(self, document: dict) -> None:
        """Offer the control plane's export of the live fleet as a choice while there is one
        (written only when it changes, and whole, so a run never reads half a file)."""
        import yaml

        if not document:
            self.live_fleet.unlink(missing_ok=True)
            return
        text = yaml.safe_dump(document, sort_keys=False)
        if self.live_fleet.exists() and self.live_fleet.read_text(encoding="utf-8") == text:
            return
        self.live_fleet.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.live_fleet.with_suffix(".tmp")
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(self.live_fleet)

    def traces(self) -> list[Choice]:
        from heddle.traces.samples import shipped_trace_names

        recorded = self._recorded_files()
        out = [Choice("recorded:all", f"what this cluster ran (recorded, {len(recorded)} "
                      f"file{'s' if len(recorded) != 1 else ''})", str(self.recorded))] if recorded else []
        out += [Choice(f"shipped:{n}", f"{n} (shipped)", n) for n in shipped_trace_names()]
        return out + self._uploaded("traces", "uploaded")

    @staticmethod
    def policy_words() -> dict[str, str]:
        return {name: POLICY_WORDS.get(name, "") for name in Choices.policies()}

    @staticmethod
    def policies() -> list[str]:
        from heddle.optimizer import POLICY_NAMES

        return list(POLICY_NAMES)

    @staticmethod
    def scenarios() -> list[str]:
        from heddle.sim.scenario import shipped_scenario_path

        return sorted(p.stem for p in shipped_scenario_path().parent.glob("*.yaml"))

    def _recorded_files(self) -> list[Path]:
        return sorted(self.recorded.glob("*.parquet")) if self.recorded.is_dir() else []

    def _uploaded(self, kind: str, word: str) -> list[Choice]:
        folder = self.uploads / kind
        if not folder.is_dir():
            return []
        return [Choice(f"upload:{p.name}", f"{p.name} ({word})", str(p)) for p in sorted(folder.iterdir())]

    def default_trace(self, shipped: str) -> str:
        """What this cluster recorded, when it has recorded anything, else a shipped trace."""
        return "recorded:all" if self._recorded_files() else f"shipped:{shipped}"

    # -- resolving posted keys --------------------------------------------------------------------
    @staticmethod
    def resolve(key: str, listing: list[Choice], what: str) -> Choice:
        for choice in listing:
            if choice.key == key:
                return choice
        known = ", ".join(c.key for c in listing)
        raise UiError(f"{what}: unknown choice {key!r}; expected one of {known}")

    # -- uploads -------------------------------------------------------------------------------------
    def save_upload(self, kind: str, filename: str, data: bytes) -> Choice:
        """Check and keep an uploaded fleet or trace; UiError naming the file if it is not one."""
        name = _SAFE.sub("_", Path(filename or "").name).lstrip(".")
        suffixes = FLEET_SUFFIXES if kind == "fleets" else TRACE_SUFFIXES
        what = "fleet YAML" if kind == "fleets" else "trace (" + ", ".join(TRACE_SUFFIXES) + ")"
        if not name or Path(name).suffix.lower() not in suffixes:
            raise UiError(f"{filename or 'the upload'}: expected a {what} file")
        if not data:
            raise UiError(f"{name}: the file is empty; expected a {what}")
        if len(data) > MAX_UPLOAD_BYTES:
            raise UiError(f"{name}: {len(data):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
        folder = self.uploads / kind
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        scratch = folder / f".checking-{name}"
        scratch.write_bytes(data)
        try:
            _check(kind, scratch, name)
        except UiError:
            scratch.unlink(missing_ok=True)
            raise
        scratch.replace(target)
        return Choice(f"upload:{name}", f"{name} (uploaded)", str(target))


def _check(kind: str, path: Path, name: str) -> None:
    """Read the file the way the twin will; its reader's error, with the upload's name."""
    from heddle.models.errors import ModelsError
    from heddle.traces import TraceError

    try:
        if kind == "fleets":
            from heddle.models.fleet import parse_fleet

            parse_fleet(path.read_text(encoding="utf-8"), name)
        else:
            from heddle.traces.tracefile import read_trace

            read_trace(path)
    except UnicodeDecodeError:
        raise UiError(f"{name}: not text; expected a fleet YAML") from None
    except (ModelsError, TraceError, OSError, ValueError) as exc:
        raise UiError(str(exc).replace(str(path), name)) from None
