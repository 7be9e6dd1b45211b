"""Every models test runs with a fresh HOME and no HEDDLE_* variables, so a developer's own
~/.heddle/config.yaml or environment cannot change what the CLI tests see."""

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for key in [k for k in os.environ if k.startswith("HEDDLE_")]:
        monkeypatch.delenv(key)
