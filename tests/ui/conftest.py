"""Fixtures of the UI tests: one Chromium per session, `heddle ui` processes, pages that
collect console errors and save screenshots."""

from __future__ import annotations

import pytest

from tests.ui.uikit import UiProcess, need_chromium


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API keeps an event loop running while
    it is open, which would stop async tests that run after it."""
    path = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def demo_ui(tmp_path_factory):
    """A UI with no cluster running (What-if and Advice on the shipped demo)."""
    tmp = tmp_path_factory.mktemp("ui-demo")
    ui = UiProcess(tmp, "--nats", "nats://127.0.0.1:9")  # nothing listens on port 9 (discard)
    yield ui
    ui.stop()


SMALL_TRACE_S = 1200.0
"""The first 20 minutes of the shipped demo trace (~260 requests): a what-if in seconds."""


@pytest.fixture(scope="session")
def small_trace(tmp_path_factory):
    """A short trace file cut from the shipped demo, for uploads and quick what-ifs."""
    from heddle.traces import shipped_trace_path
    from heddle.traces.trace import Trace
    from heddle.traces.tracefile import read_trace, write_trace

    demo = read_trace(shipped_trace_path("demo"))
    rows = demo.df[demo.df["arrival_s"] < SMALL_TRACE_S].reset_index(drop=True)
    path = tmp_path_factory.mktemp("traces") / "first-20-minutes.parquet"
    write_trace(Trace.from_frame(rows, meta=demo.meta), path)
    return path


class Console:
    """Console errors and uncaught page errors of one page."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))


@pytest.fixture
def screenshots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


@pytest.fixture
def new_page(browser):
    """``new_page(width, height)`` -> (page, console) in a fresh context; closed at teardown."""
    contexts = []

    def _new(width: int = 1280, height: int = 800):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page, Console(page)

    yield _new
    for context in contexts:
        context.close()
