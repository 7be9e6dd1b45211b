"""The live pages in a real browser against a real cluster: nats-server, the control plane
and agents, each a separate OS process on loopback. The fleet table changes while the page
stays open (server-sent events, no reload) as agents join, leave and drain; the Work page
shows a real job's tasks and one task's recorded life."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.live.clusterkit import REPO, WAIT_S, Cluster, echo_tasks, workload_file
from tests.ui.uikit import UiProcess, need_chromium

WAIT_MS = WAIT_S * 1000


@pytest.fixture(scope="module")
def live_ui(tmp_path_factory):
    need_chromium()  # before starting a cluster for nothing
    tmp = tmp_path_factory.mktemp("ui-live")
    cluster = Cluster(tmp)
    try:
        cluster.start_control()
        ui = UiProcess(tmp, "--nats", cluster.url, "--lost-after", "3")
    except BaseException:
        cluster.close()
        raise
    yield cluster, ui
    ui.stop()
    cluster.close()


def open_fleet(ui, new_page):
    page, console = new_page()
    page.goto(ui.url + "/fleet")
    page.evaluate("window.sameDocument = true")  # gone if the page ever reloads
    return page, console


def test_the_fleet_table_follows_an_agent_joining_and_leaving(live_ui, new_page, screenshots):
    cluster, ui = live_ui
    page, console = open_fleet(ui, new_page)
    row = page.locator("tr[data-node=kitchen]")
    assert row.count() == 0
    cluster.start_agent("kitchen", "alice", slots=2)
    page.locator("tr[data-node=kitchen][data-status=active]").wait_for(timeout=WAIT_MS)
    text = row.inner_text()
    assert "joined just now" in text and "m1-7" in text and "of 2 busy" in text and "alice" in text
    page.screenshot(path=str(screenshots / "fleet-joined.png"), full_page=True)
    cluster.agents["kitchen"].send_signal(signal.SIGTERM)  # it drains, says goodbye and exits
    page.locator("tr[data-node=kitchen][data-status=left]").wait_for(timeout=WAIT_MS)
    assert "left the fleet" in row.inner_text()
    assert cluster.agents["kitchen"].wait(timeout=WAIT_S) == 0
    assert page.evaluate("window.sameDocument") is True
    page.screenshot(path=str(screenshots / "fleet-left.png"), full_page=True)
    assert console.errors == []


def test_a_silent_agent_shows_as_lost(live_ui, new_page):
    cluster, ui = live_ui
    page, console = open_fleet(ui, new_page)
    cluster.start_agent("attic", "carol", slots=1)
    page.locator("tr[data-node=attic][data-status=active]").wait_for(timeout=WAIT_MS)
    cluster.kill(cluster.agents["attic"])  # kill -9: no goodbye
    page.locator("tr[data-node=attic][data-status=lost]").wait_for(timeout=WAIT_MS)
    assert page.locator("tr[data-node=attic] button[data-drain]").count() == 0
    assert console.errors == []


def test_drain_a_node_from_its_button(live_ui, new_page, screenshots):
    cluster, ui = live_ui
    page, console = open_fleet(ui, new_page)
    cluster.start_agent("garage", "bob", slots=1)
    row = page.locator("tr[data-node=garage]")
    page.locator("tr[data-node=garage][data-status=active]").wait_for(timeout=WAIT_MS)
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Drain").click()
    page.locator("#toast", has_text="garage is draining").wait_for(timeout=WAIT_MS)
    assert "Drain garage?" in asked[0]
    page.screenshot(path=str(screenshots / "fleet-draining.png"), full_page=True)
    # The control plane drains it: it finishes, says goodbye and exits.
    page.locator("tr[data-node=garage][data-status=left]").wait_for(timeout=WAIT_MS)
    assert cluster.agents["garage"].wait(timeout=WAIT_S) == 0
    assert console.errors == []


def test_the_work_page_shows_a_job_and_a_tasks_life(live_ui, new_page, screenshots, tmp_path):
    cluster, ui = live_ui
    cluster.start_agent("study", "dana", slots=2)
    page, console = new_page()
    page.goto(ui.url + "/fleet")  # work is submitted once the machine is there to run it
    page.locator("tr[data-node=study][data-status=active]").wait_for(timeout=WAIT_MS)
    job_file = workload_file(tmp_path, "three.yaml", echo_tasks(3))
    submitted = subprocess.run(
        [sys.executable, "-m", "heddle.cli.live", "submit", str(job_file), "--nats", cluster.url,
         "--job", "ui-job", "--wait"], check=False, cwd=REPO, capture_output=True, text=True,
        timeout=WAIT_S)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    page.get_by_role("link", name="Work").click()
    job = page.locator("tr[data-job=ui-job]")
    job.wait_for()
    assert job.locator("td").nth(4).inner_text() == "3"  # completed
    job.get_by_role("link", name="ui-job").click()
    task = page.locator("tr[data-task]").first
    task.wait_for()
    assert "completed" in task.inner_text() and "study" in task.inner_text()
    task.get_by_role("link").click()
    page.locator("table.events").wait_for()
    events = page.locator("table.events").inner_text()
    for step in ("submitted (public work)", "placed on study", "started on study", "completed on study"):
        assert step in events
    assert "echo" in page.locator("section.card", has_text="The task").inner_text()
    # the optimizer's own words for the choice, recorded with the placement
    assert "study: lowest cost" in page.locator("section.card", has_text="Why it ran there").inner_text()
    assert "run time" in page.locator("section.card", has_text="Predicted").inner_text()
    assert "run time" in page.locator("section.card", has_text="Actual").inner_text()
    page.screenshot(path=str(screenshots / "task.png"), full_page=True)
    assert console.errors == []
