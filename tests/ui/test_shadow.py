"""Shadow predictions show up when the control plane's replies carry them: the Work table
adds predicted and actual run times and the twin's running error, the fleet its error per
machine (rendered from the same templates the server uses)."""

from __future__ import annotations

import time
from importlib.resources import files

from jinja2 import Environment, FileSystemLoader, select_autoescape

from heddle.live import protocol as wire
from heddle.ui.fleetwatch import FleetWatch, NodeView
from heddle.ui.work import STATES

TEMPLATES = Environment(loader=FileSystemLoader(str(files("heddle.ui") / "templates")),
                        autoescape=select_autoescape())


def work(tasks, shadow):
    return {"counts": [(s, 0) for s in STATES], "jobs": [("j", [0] * len(STATES))], "tasks": tasks, "job": "j",
            "refused": {}, "predictions": any(t.get("predicted_s") is not None for t in tasks), "shadow": shadow}


def test_the_work_table_shows_predicted_and_actual_run_times_when_recorded():
    row = {"task_id": "j-t0", "job_id": "j", "status": "completed", "node": "mini", "attempts": 1, "reason": ""}
    plain = TEMPLATES.get_template("_work_table.html").render(work=work([row], None), states=STATES, job="j")
    assert "Predicted run" not in plain and "off by" not in plain
    shadowed = TEMPLATES.get_template("_work_table.html").render(
        work=work([{**row, "predicted_s": 2.5, "actual_s": 2.75}],
                  {"tasks": 40, "median_abs_error": 0.08, "mean_error": 0.05}), states=STATES, job="j")
    assert "Predicted run" in shadowed and "2.50 s" in shadowed and "2.75 s" in shadowed
    assert "off by <strong>8%</strong> (median) over the last 40 tasks, too short by 5% on average" in shadowed


def report(node: str) -> wire.CapacityReport:
    return wire.CapacityReport(
        sender=node, seq=1, sent_at=time.time(), node_id=node, agent_id=node, hostname="box", os="linux",
        arch="x86_64", chip="cpu", device="m1-8", memory=wire.Memory(total_gb=16, free_gb=9, unified=True),
        cpu=wire.Cpu(performance_cores=4, utilization=0.1), owner="dana", slots=2, free_slots=1)


def test_the_fleet_shows_the_twins_error_per_machine_when_recorded():
    watch = FleetWatch("nats://127.0.0.1:9")
    now = time.time()
    watch.nodes = {"mini": NodeView("mini", report("mini"), now, now, shadow_error=0.12),
                   "air": NodeView("air", report("air"), now, now)}
    watch.problem, watch.shadow = None, {"tasks": 10, "median_abs_error": 0.1, "mean_error": -0.02}
    html = TEMPLATES.get_template("_fleet_table.html").render(fleet=watch.snapshot(), may_drain=False)
    assert "predicted run times were off by 10% (median) over the last 10 tasks" in html
    mini, air = html.split('data-node="mini"')[1], html.split('data-node="air"')[1].split('data-node="mini"')[0]
    assert "twin off by 12%" in mini and "twin off by" not in air
    assert "1 of 2 busy" in mini and "9.0 of 16.0 GB free" in mini
