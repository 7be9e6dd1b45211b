"""The catalog snapshot: current, equal to the validated YAML, and never trusted when stale."""

from __future__ import annotations

import json
import subprocess
import sys

from heddle.models import catalog, catalog_snapshot
from heddle.models.catalog_yaml import build_catalog

REGENERATE = "stale: run `uv run python -m heddle.models.catalog_snapshot` and commit the file"


def test_the_committed_snapshot_is_what_the_yaml_builds_today():
    built = build_catalog()
    text = catalog_snapshot.SNAPSHOT.read_text(encoding="utf-8")
    assert text == catalog_snapshot.encode(built, catalog_snapshot.sources_digest()), REGENERATE
    # the same specs, types included (an int 35 where the YAML path gives 35.0 prints differently)
    assert repr(catalog_snapshot.read()) == repr(built)


def test_the_shipped_catalog_comes_from_the_snapshot_and_equals_the_yaml():
    assert catalog_snapshot.read() is not None, REGENERATE
    assert repr(catalog.load_catalog()) == repr(catalog._shipped())


def test_a_stale_corrupt_or_missing_snapshot_is_not_read(tmp_path):
    doc = json.loads(catalog_snapshot.SNAPSHOT.read_text(encoding="utf-8"))
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**doc, "sources_crc32": "00000000"}), encoding="utf-8")
    assert catalog_snapshot.read(stale) is None  # an edited YAML file or rule: validate the YAML
    renamed = tmp_path / "renamed.json"
    doc["devices"][0]["gpu_corez"] = doc["devices"][0].pop("gpu_cores")
    renamed.write_text(json.dumps(doc), encoding="utf-8")
    assert catalog_snapshot.read(renamed) is None  # a field specs.py no longer has
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00{not json")
    assert catalog_snapshot.read(garbage) is None
    assert catalog_snapshot.read(tmp_path / "missing.json") is None


def test_reading_the_shipped_catalog_imports_no_pydantic_yaml_or_numpy():
    probe = ("import sys; from heddle.models import catalog; catalog.lookup('m4-max-40');"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml', 'numpy')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]", REGENERATE if "pydantic" in done.stdout else done.stdout
