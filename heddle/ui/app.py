"""The web app of `heddle ui`: four pages (Fleet, Work, What-if, Advice) on FastAPI.

`create_app(settings)` is the composition root: it builds the fleet watch, the background
runs and the form choices and hands them to the routes. Pages are Jinja2 templates; the one
hand-written script (static/app.js) streams the fleet table, polls runs and posts forms.
Everything the page loads is served from this package: it works with no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from heddle.ui.auth import COOKIE, Access, AccessMiddleware
from heddle.ui.choices import MAX_UPLOAD_BYTES, SCENARIO_WORDS, Choices
from heddle.ui.fleetwatch import FleetWatch
from heddle.ui.runs import Runs
from heddle.ui.settings import UiError, UiSettings

__all__ = ["create_app"]

PACKAGE = files("heddle.ui")
ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
TASK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")
KEEPALIVE_S = 15.0
"""A comment line on a quiet event stream this often, so proxies keep it open."""
ADVICE_TRACE = "demo-14d"
"""The shipped trace advice uses without a recorded one: purchase advice needs weeks of work."""
SECURITY_HEADERS = [
    (b"content-security-policy", (b"default-src 'self'; img-src 'self' data:; style-src 'self' "
                                  b"'unsafe-inline'; script-src 'self'; frame-ancestors 'self'")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
"""Nothing but this server may load into a page (no CDN, no network at run time)."""


def _login(data_dir: Path) -> dict:
    """How the person at this machine logs in to its `heddle up` cluster ({}: no login stored)."""
    from heddle.live.cluster.join import USER_CREDENTIALS_FILE, Credentials

    login = Credentials.find(data_dir, USER_CREDENTIALS_FILE)
    return login.auth_options() if login is not None else {}


def create_app(settings: UiSettings) -> FastAPI:
    access = Access(settings)
    watch = FleetWatch(settings.nats_url, settings.lost_after_s, auth=_login(settings.data_dir))
    runs = Runs(settings.work_dir)
    choices = Choices(settings.work_dir, settings.data_dir)
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        runs.start()
        await watch.start()
        yield
        await runs.close()
        await watch.close()

    app = FastAPI(title="heddle", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(AccessMiddleware, access=access, extra_headers=SECURITY_HEADERS)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        role = request.scope.get("state", {}).get("role")
        return templates.TemplateResponse(request, name, {
            "page": name.removesuffix(".html"), "role": role, "may_drain": access.may_drain(role),
            "login_needed": not access.open, **context})

    def refuse(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    # -- log in ----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/fleet") -> HTMLResponse:
        return page(request, "login.html", next=_local(next), error=None)

    @app.post("/login")
    async def login(request: Request) -> Any:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        cookie = access.cookie_for(form.get("token", ""))
        if cookie is None:
            return page(request, "login.html", next=_local(form.get("next", "/fleet")),
                        error="That token does not open this UI.")
        response = RedirectResponse(_local(form.get("next", "/fleet")), status_code=303)
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict")
        return response

    # -- fleet -----------------------------------------------------------------------------------
    @app.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/fleet", status_code=303)

    @app.get("/fleet", response_class=HTMLResponse)
    async def fleet(request: Request) -> HTMLResponse:
        return page(request, "fleet.html", fleet=watch.snapshot())

    @app.get("/fleet/events")
    async def fleet_events(request: Request) -> StreamingResponse:
        may_drain = access.may_drain(request.scope.get("state", {}).get("role"))
        fragment = templates.get_template("_fleet_table.html")

        async def stream():
            version, sent, quiet = -1, None, 0.0
            while True:
                html = fragment.render(fleet=watch.snapshot(), may_drain=may_drain)
                if html != sent:
                    yield f"event: fleet\ndata: {json.dumps({'html': html})}\n\n"
                    sent, quiet = html, 0.0
                elif quiet >= KEEPALIVE_S:
                    yield ": still here\n\n"
                    quiet = 0.0
                before = asyncio.get_running_loop().time()
                version = await watch.wait_change(version)
                quiet += asyncio.get_running_loop().time() - before

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.post("/fleet/drain/{node_id}")
    async def drain(request: Request, node_id: str) -> JSONResponse:
        from heddle.live.control.client import ControlError

        if not access.may_drain(request.scope.get("state", {}).get("role")):
            return refuse("you may look at this fleet but not drain its nodes", 403)
        if not ID.match(node_id):
            return refuse(f"node id {node_id!r}: expected letters, digits, '_' or '-'")
        try:
            await watch.drain(node_id)
        except ControlError as exc:
            return refuse(f"could not drain {node_id}: {exc}", 409)
        return JSONResponse({"ok": True, "message": f"{node_id} is draining: it finishes its work and takes no new work"})

    # -- work ------------------------------------------------------------------------------------
    async def work_context(job: str | None) -> dict[str, Any]:
        from heddle.ui.work import STATES, overview

        if job is not None and not ID.match(job):
            return {"problem": f"job id {job!r}: expected letters, digits, '_' or '-'", "states": STATES}
        if watch.client is None:
            return {"problem": watch.problem or "not connected to a cluster", "states": STATES}
        try:
            return {"work": await overview(watch.client, job), "states": STATES, "problem": None}
        except Exception as exc:  # noqa: BLE001 - no scheduler, a reconnect, a refusal: shown as is
            return {"problem": str(exc) or type(exc).__name__, "states": STATES}

    @app.get("/work", response_class=HTMLResponse)
    async def work(request: Request, job: str | None = None) -> HTMLResponse:
        return page(request, "work.html", job=job, **await work_context(job))

    @app.get("/work/table", response_class=HTMLResponse)
    async def work_table(request: Request, job: str | None = None) -> HTMLResponse:
        return page(request, "_work_table.html", job=job, **await work_context(job))

    @app.get("/work/task/{task_id}", response_class=HTMLResponse)
    async def task(request: Request, task_id: str) -> HTMLResponse:
        from heddle.ui.work import event_log, history

        if not TASK_ID.match(task_id):
            return page(request, "task.html", task_id=task_id, problem="not a task id", story=None)
        if watch.nc is None:
            return page(request, "task.html", task_id=task_id, problem=watch.problem, story=None)
        try:
            story = await history(event_log(watch.nc), task_id)
        except Exception as exc:  # noqa: BLE001 - e.g. no event stream yet, or no right to read it
            return page(request, "task.html", task_id=task_id, story=None,
                        problem=f"the task's history cannot be read: {exc or type(exc).__name__}")
        return page(request, "task.html", task_id=task_id, story=story, problem=None)

    # -- what-if and advice ------------------------------------------------------------------------
    def run_or_latest(kind: str, run_id: str | None):
        return runs.runs.get(run_id) if run_id else runs.latest(kind)

    @app.get("/whatif", response_class=HTMLResponse)
    async def whatif(request: Request, run: str | None = None) -> HTMLResponse:
        choices.keep_live_fleet(watch.fleet_file)
        return page(request, "whatif.html", fleets=choices.fleets(), traces=choices.traces(),
                    policies=choices.policies(), policy_words=choices.policy_words(),
                    scenarios=choices.scenarios(), scenario_words=SCENARIO_WORDS,
                    default_trace=choices.default_trace("demo"), run=run_or_latest("whatif", run))

    @app.post("/whatif")
    async def start_whatif(request: Request) -> JSONResponse:
        try:
            form = await _json(request)
            fleets = [choices.resolve(k, choices.fleets(), "fleet") for k in _list(form, "fleets", "a fleet")]
            trace = choices.resolve(str(form.get("trace")), choices.traces(), "trace")
            policies = _list(form, "policies", "a policy")
            bad = [p for p in policies if p not in choices.policies()]
            if bad:
                raise UiError(f"policy: unknown {bad[0]!r}; expected one of {', '.join(choices.policies())}")
            scenario = form.get("scenario") or None
            if scenario is not None and scenario not in choices.scenarios():
                raise UiError(f"what happens: unknown scenario {scenario!r}; expected one of "
                              f"{', '.join(choices.scenarios())}")
        except UiError as exc:
            return refuse(str(exc))
        title = (f"{', '.join(f.key.split(':', 1)[1] for f in fleets)} × {', '.join(policies)} "
                 f"on {trace.key.split(':', 1)[1]}" + (f", with {scenario}" if scenario else ""))
        run = runs.submit("whatif", title, {"fleets": [f.path for f in fleets], "trace": trace.path,
                                            "policies": policies, "scenario": scenario, "seed": settings.seed})
        return JSONResponse(run.status())

    @app.get("/advice", response_class=HTMLResponse)
    async def advice(request: Request, run: str | None = None) -> HTMLResponse:
        choices.keep_live_fleet(watch.fleet_file)
        return page(request, "advice.html", fleets=choices.fleets(), traces=choices.traces(),
                    default_trace=choices.default_trace(ADVICE_TRACE), run=run_or_latest("advice", run))

    @app.post("/advice")
    async def start_advice(request: Request) -> JSONResponse:
        try:
            form = await _json(request)
            fleet = choices.resolve(str(form.get("fleet")), choices.fleets(), "fleet")
            trace = choices.resolve(str(form.get("trace")), choices.traces(), "trace")
        except UiError as exc:
            return refuse(str(exc))
        title = f"fleet {fleet.key.split(':', 1)[1]}, work {trace.key.split(':', 1)[1]}"
        run = runs.submit("advice", title, {"fleet": fleet.path, "trace": trace.path, "seed": settings.seed})
        return JSONResponse(run.status())

    @app.get("/runs/{run_id}")
    async def run_status(run_id: str) -> JSONResponse:
        run = runs.runs.get(run_id)
        return JSONResponse(run.status()) if run else refuse(f"no run {run_id!r}", 404)

    @app.get("/runs/{run_id}/card", response_class=HTMLResponse)
    async def run_card(request: Request, run_id: str) -> HTMLResponse:
        run = runs.runs.get(run_id)
        if run is None:
            return HTMLResponse("<p>That run is no longer kept.</p>", status_code=404)
        return page(request, "_run.html", run=run)

    @app.get("/runs/{run_id}/files/{name:path}")
    async def run_file(run_id: str, name: str) -> Any:
        run = runs.runs.get(run_id)
        if run is None or not run.ended:
            return refuse("no such file", 404)
        path = (run.out / name).resolve()
        if not path.is_file() or run.out.resolve() not in path.parents or path.name == "spec.json":
            return refuse("no such file", 404)
        return FileResponse(path)

    @app.post("/upload/{kind}")
    async def upload(request: Request, kind: str) -> JSONResponse:
        if kind not in ("fleets", "traces"):
            return refuse(f"uploads are fleets or traces, not {kind!r}", 404)
        name = unquote(request.headers.get("x-filename", ""))
        size = request.headers.get("content-length", "0")
        if size.isdigit() and int(size) > MAX_UPLOAD_BYTES:  # before reading it all into memory
            return refuse(f"{name}: {int(size):,} bytes, more than the {MAX_UPLOAD_BYTES:,} accepted")
        try:
            saved = await asyncio.to_thread(choices.save_upload, kind, name, await request.body())
        except UiError as exc:
            return refuse(str(exc))
        return JSONResponse({"key": saved.key, "label": saved.label})

    app.state.watch, app.state.runs = watch, runs  # for tests and the server's shutdown
    return app


def _local(target: str) -> str:
    """Only paths on this server are followed after logging in (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/fleet"


async def _json(request: Request) -> dict[str, Any]:
    try:
        form = json.loads(await request.body())
    except ValueError:
        raise UiError("the form did not arrive as JSON") from None
    if not isinstance(form, dict):
        raise UiError("the form did not arrive as a JSON object")
    return form


def _list(form: dict[str, Any], key: str, what: str) -> list[str]:
    value = form.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UiError(f"{key}: choose at least {what}")
    return value

