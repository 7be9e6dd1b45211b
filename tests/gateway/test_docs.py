"""docs/gateway.md runs as written: its keys file is a valid one, its commands exist with the
flags it names, and its Python examples (the openai, ollama and anthropic clients) run against
a real cluster whose gateway holds the documented keys."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex

from typer.testing import CliRunner

from heddle.cli.main import app
from heddle.gateway import load_keys
from heddle.models.ids import Privacy
from tests.gateway.imagekit import png
from tests.live.clusterkit import REPO
from tests.live.llmstandin import EMBEDDING_DIMENSIONS, THOUGHTS, TOOL_ARGUMENTS, WORDS, image_words

DOC = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
PHOTO = png(64, 48)


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.DOTALL)


def test_the_documented_keys_file_loads(tmp_path):
    (text,) = blocks("yaml")
    path = tmp_path / "gateway-keys.yaml"
    path.write_text(text, encoding="utf-8")
    keys = load_keys(path)
    alice = keys.caller("Bearer sk-alice-7f3a9c41")
    assert (alice.owner, alice.privacy, alice.account) == ("alice", Privacy.PERSONAL, "alice")
    assert keys.caller("Bearer sk-house-19b2e0d7").deadline_s == 120


def test_the_documented_commands_take_the_documented_flags():
    helps = {cmd: CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).output
             for cmd in ("up", "gateway")}
    for line in blocks("bash"):
        _, cmd, *rest = shlex.split(line)
        assert [flag for flag in rest if flag.startswith("--") and flag not in helps[cmd]] == []
    named = ("--max-wait", "--request-timeout", "--task-timeout", "--cloud", "--host", "--keys")
    assert [flag for flag in named if flag not in helps["gateway"]] == []
    assert "--gateway-port" in helps["up"]


def test_the_documented_python_examples_run_against_a_cluster(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(PHOTO)  # the image example's file
    outputs = []
    for code in blocks("python"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code.replace("http://127.0.0.1:11435", cluster.base_url), {})  # noqa: S102
        outputs.append(out.getvalue())
    (openai_out, ollama_out, fim_out, tools_out, thinking_out, embed_out, image_out, anthropic_out,
     responses_out) = outputs
    assert openai_out.splitlines() == ["".join(WORDS), "alice-mac"]  # alice's personal work
    assert ollama_out == "".join(WORDS)
    assert fim_out == "".join(WORDS) + "\n"
    assert tools_out.splitlines() == [f"get_weather {TOOL_ARGUMENTS}", "".join(WORDS)]
    *thoughts, answer = thinking_out.splitlines()  # thoughts that came together: one line
    assert "".join(t.removeprefix("[thinking] ") for t in thoughts) == "".join(THOUGHTS)
    assert answer == "".join(WORDS)
    assert embed_out.splitlines() == [f"2 {EMBEDDING_DIMENSIONS}", "alice-mac"]
    assert anthropic_out.splitlines() == ["".join(WORDS), f"end_turn {len(WORDS)}"]
    assert responses_out.splitlines() == [f"get_weather {json.dumps(TOOL_ARGUMENTS)}", "".join(WORDS),
                                          "alice-mac"]
    assert image_out.splitlines() == ["".join(image_words([PHOTO])), "alice-mac"]
