"""Who gets in and what they may do, over real HTTP against `heddle ui` processes: the
server started as docs/ui.md shares it on the network (with a token), and refusals for
binding beyond loopback without one."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from heddle.cli.main import app
from tests.ui.uikit import UiProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "ui.md"
VIEWER = "viewer-token-for-tests-0123"


def doc_command(index: int) -> list[str]:
    """The index-th `heddle ui` command of docs/ui.md, its $(...) run by the shell as written."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
             for line in block.splitlines() if line.startswith("heddle ui")]
    expanded = subprocess.run(["bash", "-c", f"printf '%s\\n' {lines[index].split(' #')[0][len('heddle ui'):]}"],
                              capture_output=True, text=True, check=True).stdout.split("\n")
    return [a for a in expanded if a]


def request(url: str, method: str = "GET", path: str = "/", body: bytes | None = None, **headers: str):
    """One real HTTP request; returns (status, headers, text). Redirects are not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def shared_ui(tmp_path_factory):
    """`heddle ui` as the docs share it (0.0.0.0, the operator token), plus a viewer token."""
    args = doc_command(1)
    assert args[:2] == ["--host", "0.0.0.0"] and args[2] == "--token"
    ui = UiProcess(tmp_path_factory.mktemp("ui-shared"), *args, "--viewer-token", VIEWER,
                   "--nats", "nats://127.0.0.1:9")
    ui.token = args[3]
    ui.url = ui.url.replace("0.0.0.0", "127.0.0.1")
    yield ui
    ui.stop()


def login(ui, token: str) -> str:
    status, headers, _ = request(ui.url, "POST", "/login", f"token={token}&next=/work".encode(),
                                 **{"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/work"
    cookie = headers["set-cookie"]
    assert token not in cookie and "HttpOnly" in cookie
    return cookie.split(";")[0]


def test_a_page_sends_a_stranger_to_the_login_form(shared_ui):
    status, headers, _ = request(shared_ui.url, path="/fleet", Accept="text/html")
    assert status == 303 and headers["location"] == "/login?next=%2Ffleet"
    status, _, text = request(shared_ui.url, path="/login")
    assert status == 200 and 'name="token"' in text
    status, _, text = request(shared_ui.url, path="/runs/whatif-1234")  # not a page: no redirect
    assert status == 401 and "log in" in json.loads(text)["error"]


def test_a_wrong_token_does_not_open_it(shared_ui):
    status, headers, text = request(shared_ui.url, "POST", "/login", b"token=guess-guess-guess-guess",
                                    **{"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "does not open this UI" in text and "set-cookie" not in headers


def test_the_operator_may_drain_and_the_viewer_may_only_look(shared_ui):
    operator, viewer = login(shared_ui, shared_ui.token), login(shared_ui, VIEWER)
    for cookie in (operator, viewer):
        assert request(shared_ui.url, path="/fleet", Cookie=cookie)[0] == 200
    status, _, text = request(shared_ui.url, "POST", "/fleet/drain/pi", Cookie=viewer, **{"X-Heddle-UI": "1"})
    assert status == 403 and "not drain" in json.loads(text)["error"]
    # The operator is let through; with no cluster there the drain itself fails, saying why.
    status, _, text = request(shared_ui.url, "POST", "/fleet/drain/pi", Cookie=operator, **{"X-Heddle-UI": "1"})
    assert status == 409 and json.loads(text)["error"].startswith("could not drain pi: ")
    status, _, _ = request(shared_ui.url, "POST", "/fleet/drain/pi",
                           Authorization=f"Bearer {shared_ui.token}", **{"X-Heddle-UI": "1"})
    assert status == 409


def test_a_change_without_the_pages_header_is_refused(shared_ui):
    cookie = login(shared_ui, shared_ui.token)
    status, _, text = request(shared_ui.url, "POST", "/fleet/drain/pi", Cookie=cookie)
    assert status == 403 and "from the heddle page itself" in json.loads(text)["error"]


def test_pages_carry_a_policy_that_loads_nothing_from_elsewhere(shared_ui):
    cookie = login(shared_ui, shared_ui.token)
    status, headers, text = request(shared_ui.url, path="/whatif", Cookie=cookie)
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from another host


def test_run_files_stay_inside_their_run(shared_ui):
    cookie = login(shared_ui, shared_ui.token)
    for path in ("/runs/nope/files/advice.html", "/runs/nope/files/../../../../etc/passwd"):
        assert request(shared_ui.url, path=path, Cookie=cookie)[0] == 404


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "option --host: 0.0.0.0 is reachable from other machines; pass --token"),
    (["--host", "0.0.0.0", "--token", "short"], "option --token: the token is 5 characters"),
    (["--token", "same-token-for-both-x", "--viewer-token", "same-token-for-both-x"], "it equals --token"),
])
def test_unsafe_settings_are_refused_before_it_starts(args, message, tmp_path):
    result = CliRunner().invoke(app, ["ui", "--port", "0", "--data-dir", str(tmp_path), *args],
                                env={"COLUMNS": "300", "HEDDLE_CONFIG": str(tmp_path / "none.yaml")})
    assert result.exit_code == 2
    assert message in result.output


def test_on_loopback_a_request_naming_another_host_is_refused(demo_ui):
    status, _, text = request(demo_ui.url, path="/fleet", Host="attacker.example:80")
    assert status == 421 and "127.0.0.1" in json.loads(text)["error"]
    assert request(demo_ui.url, path="/fleet", Host="localhost")[0] == 200


def test_the_first_documented_command_is_what_serves_these_pages():
    assert doc_command(0) == []  # `heddle ui` with no option: what the demo_ui fixture runs
    assert shlex.join(["heddle", "ui"]) in DOC.read_text(encoding="utf-8")


def test_a_run_that_cannot_work_fails_with_the_twins_reason(demo_ui):
    form = {"fleets": ["shipped:small"], "trace": "shipped:demo", "policies": ["fast"], "scenario": "demo"}
    status, _, text = request(demo_ui.url, "POST", "/whatif", json.dumps(form).encode(),
                              **{"X-Heddle-UI": "1", "Content-Type": "application/json"})
    assert status == 200
    run = json.loads(text)
    deadline = time.monotonic() + 120
    while run["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the server as the page does
        run = json.loads(request(demo_ui.url, path=f"/runs/{run['id']}")[2])
    assert run["state"] == "failed"
    assert "events.0.node is 'alice-mbp', which is not in fleet 'small'" in run["error"]


@pytest.mark.parametrize("form, message", [
    ({"fleets": [], "trace": "shipped:demo", "policies": ["fast"]}, "fleets: choose at least a fleet"),
    ({"fleets": ["shipped:demo"], "trace": "/etc/passwd", "policies": ["fast"]}, "trace: unknown choice '/etc/passwd'"),
    ({"fleets": ["shipped:demo"], "trace": "shipped:demo", "policies": ["fastest"]}, "policy: unknown 'fastest'"),
    ({"fleets": ["shipped:demo"], "trace": "shipped:demo", "policies": ["fast"], "scenario": "x"}, "unknown scenario 'x'"),
])
def test_a_bad_form_is_refused_naming_the_field(demo_ui, form, message):
    status, _, text = request(demo_ui.url, "POST", "/whatif", json.dumps(form).encode(),
                              **{"X-Heddle-UI": "1", "Content-Type": "application/json"})
    assert status == 400 and message in json.loads(text)["error"]
