"""What the What-if and Advice forms may name: only listed choices resolve, uploads are read
the way the twin reads them before they are kept, recorded work and the live fleet appear
when the cluster has them."""

from __future__ import annotations

import shutil

import pytest

from heddle.traces import shipped_trace_path
from heddle.ui.choices import Choices
from heddle.ui.settings import UiError

FLEET = "name: garage\nnodes:\n  - {id: mini, device: m1-8, memory_gb: 8, owner: dana}\n"


@pytest.fixture
def choices(tmp_path):
    return Choices(tmp_path / "work", tmp_path / "data")


def test_only_listed_keys_resolve(choices):
    assert choices.resolve("shipped:demo", choices.fleets(), "fleet").path == "demo"
    for key in ("upload:../../etc/passwd", "shipped:nope", "/etc/passwd"):
        with pytest.raises(UiError, match=r"^fleet: unknown choice .*; expected one of shipped:demo"):
            choices.resolve(key, choices.fleets(), "fleet")


def test_an_uploaded_fleet_is_kept_under_a_safe_name(choices):
    saved = choices.save_upload("fleets", "../My Garage.yaml", FLEET.encode())
    assert saved.key == "upload:My_Garage.yaml"
    assert saved in choices.fleets()
    assert (choices.uploads / "fleets" / "My_Garage.yaml").read_text(encoding="utf-8") == FLEET


@pytest.mark.parametrize("kind, name, data, message", [
    ("fleets", "garage.txt", FLEET.encode(), "garage.txt: expected a fleet YAML file"),
    ("fleets", "garage.yaml", b"", "garage.yaml: the file is empty"),
    ("fleets", "garage.yaml", b"\xff\xfe\x00binary", "garage.yaml: not text"),
    ("fleets", "garage.yaml", FLEET.replace("m1-8", "no-such-chip").encode(), "garage.yaml:3: .*no-such-chip"),
    ("traces", "work.csv", b"a,b\n", "work.csv: expected a trace"),
    ("traces", "work.parquet", b"not parquet at all", "work.parquet"),
])
def test_a_bad_upload_is_refused_naming_the_file_and_not_kept(choices, kind, name, data, message):
    with pytest.raises(UiError, match=message):
        choices.save_upload(kind, name, data)
    folder = choices.uploads / kind
    assert not folder.exists() or list(folder.iterdir()) == []


def test_recorded_work_is_offered_first_and_is_the_default(choices):
    assert choices.default_trace("demo-14d") == "shipped:demo-14d"
    choices.recorded.mkdir(parents=True)
    shutil.copy(shipped_trace_path("demo"), choices.recorded / "2026-12-06-c0.parquet")
    first = choices.traces()[0]
    assert first.key == "recorded:all" and first.path == str(choices.recorded)
    assert choices.default_trace("demo-14d") == "recorded:all"


def test_the_live_fleet_is_offered_while_the_cluster_exports_it(choices):
    document = {"name": "live", "nodes": [{"id": "mini", "device": "m1-8", "memory_gb": 8, "owner": "dana"}]}
    choices.keep_live_fleet(document)
    live = choices.resolve("live:fleet", choices.fleets(), "fleet")
    from heddle.models.fleet import load_fleet

    assert [n.id for n in load_fleet(live.path).nodes] == ["mini"]
    choices.keep_live_fleet({})  # no control plane any more
    assert "live:fleet" not in [c.key for c in choices.fleets()]
