"""Every page in a real browser: it loads with no console error, reads on a laptop and on a
phone (no sideways scrolling), and a what-if and the advice run to their charts and report."""

from __future__ import annotations

import pytest

PAGES = [("/fleet", "Fleet"), ("/work", "Work"), ("/whatif", "What-if"), ("/advice", "Advice")]
SCREENS = [("laptop", 1280, 800), ("phone", 390, 844)]
RUN_S = 240_000
"""Upper bound (ms) on a what-if or an advice run in the browser (seconds when quiet)."""


@pytest.mark.parametrize("screen, width, height", SCREENS)
def test_every_page_loads_without_console_errors(demo_ui, new_page, screenshots, screen, width, height):
    page, console = new_page(width, height)
    for path, heading in PAGES:
        page.goto(demo_ui.url + path)
        page.wait_for_load_state("networkidle") if path != "/fleet" else page.wait_for_timeout(0)
        assert page.locator("h1").first.inner_text().startswith(heading)
        assert page.locator("nav a[aria-current=page]").inner_text() == heading
        # Readable on a phone: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} scrolls sideways"
        page.screenshot(path=str(screenshots / f"{screen}{path.replace('/', '-')}.png"), full_page=True)
    assert console.errors == []


def test_fleet_page_says_when_no_cluster_answers(demo_ui, new_page):
    page, console = new_page()
    page.goto(demo_ui.url + "/fleet")
    page.get_by_text("cannot reach the cluster at nats://127.0.0.1:9").wait_for()
    assert "What-if and Advice work without a cluster" in page.locator("#fleet").inner_text()
    assert console.errors == []


def test_a_what_if_runs_to_its_charts(demo_ui, new_page, screenshots, small_trace):
    page, console = new_page()
    page.goto(demo_ui.url + "/whatif")
    form = page.locator("#whatif-form")
    assert form.locator("input[name=fleets][value='shipped:demo']").is_checked()
    assert form.locator("select[name=trace]").input_value() == "shipped:demo"
    form.locator("input[data-upload=traces]").set_input_files(str(small_trace))  # selected once kept
    page.wait_for_function("() => document.querySelector('#whatif-form select[name=trace]').value"
                           " === 'upload:first-20-minutes.parquet'")
    form.locator("input[name=policies][value=fast]").check()
    form.locator("input[name=policies][value=round-robin]").check()
    form.get_by_role("button", name="Run the twin").click()
    page.locator("#run progress").wait_for()  # the run shows its progress while it runs
    results = page.locator("#run table.results tbody tr")
    results.first.wait_for(timeout=RUN_S)
    assert results.count() == 2
    labels = [results.nth(k).locator("td").first.inner_text() for k in range(2)]
    assert labels == ["fast", "round-robin"]
    images = page.locator("#run figure img")
    assert images.count() == 6  # latency, utilization and cost for each policy
    for k in range(images.count()):
        images.nth(k).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=images.nth(k).element_handle())
    page.screenshot(path=str(screenshots / "whatif-results.png"), full_page=True)
    # The run is kept: a reload shows it again.
    page.reload()
    assert page.locator("#run table.results tbody tr").count() == 2
    assert console.errors == []


def test_a_what_if_refuses_a_bad_upload_and_names_it(demo_ui, new_page, tmp_path):
    page, console = new_page()
    page.goto(demo_ui.url + "/whatif")
    bad = tmp_path / "garage.yaml"
    bad.write_text("name: garage\nnodes:\n  - {id: pi, device: no-such-device, memory_gb: 8, owner: dana}\n", encoding="utf-8")
    page.locator("input[data-upload=fleets]").set_input_files(str(bad))
    error = page.locator("#whatif-form [data-error]")
    error.wait_for()
    assert "garage.yaml" in error.inner_text() and "no-such-device" in error.inner_text()
    assert page.locator("input[name=fleets][value='upload:garage.yaml']").count() == 0
    good = tmp_path / "garage-büro.yaml"  # a name a header cannot carry as is
    good.write_text("name: garage2\nnodes:\n  - {id: mini, device: m1-8, memory_gb: 8, owner: dana}\n", encoding="utf-8")
    page.locator("input[data-upload=fleets]").set_input_files(str(good))
    page.locator("input[name=fleets][value='upload:garage-b_ro.yaml']").wait_for()
    assert page.locator("input[name=fleets][value='upload:garage-b_ro.yaml']").is_checked()
    assert [e for e in console.errors if "400" not in e] == []  # the refused upload is a 400


def test_the_advice_page_shows_the_advisors_report(demo_ui, new_page, screenshots):
    page, console = new_page()
    page.goto(demo_ui.url + "/advice")
    form = page.locator("#advice-form")
    assert form.locator("select[name=trace]").input_value() == "shipped:demo-14d"
    form.get_by_role("button", name="Work out the advice").click()
    page.locator("#run p.rec").wait_for(timeout=RUN_S)
    report = page.frame_locator("iframe.report")
    assert report.locator("h1").inner_text().startswith("What to buy next for fleet")
    assert report.locator("h2", has_text="Candidates (replayed in the twin)").count() == 1
    # The same sentence as the report's own recommendation.
    assert page.locator("#run p.rec").inner_text() == report.locator("p.rec").inner_text()
    page.screenshot(path=str(screenshots / "advice.png"), full_page=True)
    assert console.errors == []
