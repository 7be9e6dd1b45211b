"""Budgets hold live as in the twin: a control plane given a fleet file's cloud offers and
budgets places tier-standard work on Claude through agents that hold an API key (a stand-in
Anthropic server on 127.0.0.1), charges each call's catalog price to the task's account,
stops placing cloud work when the account's budget runs out, charges a retried task once,
and after a kill -9 and restart reads the spend back from the event log.

One cluster (nats-server, `heddle scheduler`, two agent processes) serves the module; the
tests run in order and build on each other's spend.
"""

from __future__ import annotations

import math
import os
import re
import subprocess

import pytest

from heddle.cli.live import _budget_line
from heddle.live.control.serve import READY_LINE
from heddle.live.control.submission import load_submission
from heddle.models import catalog
from heddle.models.cost import api_cost_usd
from tests.live.clusterkit import REPO, Cluster, agent_command, start_until_ready, workload_file
from tests.live.llmstandin import WORDS, Plan, StandIn, anthropic_stream

OFFER = catalog.offer("claude-haiku-4.5")
PROMPT, OUTPUT = 1000, 200
"""What each task declares: the placement reserves their price until the call reports."""
RESERVED = api_cost_usd(OFFER, PROMPT, OUTPUT)
BILLED = api_cost_usd(OFFER, 20, len(WORDS))
"""What each call costs: the stand-in counts 20 input tokens and streams the five words."""
TEAM_LIMIT = RESERVED + 3.5 * BILLED
"""Room for four calls: after k calls, a fifth needs k x BILLED + RESERVED within the limit."""
TEAM_CALLS = math.floor((TEAM_LIMIT - RESERVED) / BILLED) + 1
RELAYS = ("relay-a", "relay-b")

FLEET = f"""\
name: home
cloud_offers: [claude-haiku-4.5]
budgets:
  team: {{limit_usd: {TEAM_LIMIT!r}, period: month}}
  lab: {{limit_usd: 10.0, period: month}}
nodes:  # the twin's machines; the control plane takes its nodes from the agents
  - {{id: studio, device: m1-7, memory_gb: 8, owner: ann}}
"""


class CloudCluster(Cluster):
    def start_relay(self, node: str, server: StandIn) -> None:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test", "HEDDLE_CONFIG": str(self.tmp / "none.yaml"),
               "HEDDLE_DATA_DIR": str(self.tmp / node)}
        self.agents[node] = subprocess.Popen(
            [*agent_command(self.url, node, "ann", 1, ()), "--anthropic-base-url", server.url],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=(self.tmp / f"{node}.log").open("w"))

    def restart_control(self) -> None:
        """kill -9 the control plane and start it again with the same arguments."""
        args = self.control.args
        self.kill(self.control)
        self.control, _ = start_until_ready(args, READY_LINE, self.control_log)


@pytest.fixture(scope="module")
def server():
    s = StandIn()
    yield s
    for event in s.holds:
        event.set()
    s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, server):
    kit = CloudCluster(tmp_path_factory.mktemp("budget"))
    try:
        kit.start_control("--fleet", str(workload_file(kit.tmp, "fleet.yaml", FLEET)))
        for node in RELAYS:
            kit.start_relay(node, server)
        yield kit
    finally:
        kit.close()


def cloud_job(tmp_path, job: str, n: int, account: str) -> list:
    lines = ["tasks:"] + [
        f"  - {{id: c{i}, kind: llm, model: llama-3.1-8b, quant: q4_k_m, tier: standard, "
        f"prompt_tokens: {PROMPT}, output_tokens: {OUTPUT}, account: {account}}}" for i in range(n)]
    return load_submission(workload_file(tmp_path, f"{job}.yaml", "\n".join(lines) + "\n"), job)


async def spend(client) -> dict[str, float]:
    return {b.account: b.spent_usd for b in (await client.fleet()).budgets}


async def ready(cluster):
    client = await cluster.client()
    await cluster.wait_nodes(client, set(RELAYS))
    return client


async def test_a_budget_that_runs_out_stops_cloud_placement_and_spend_is_the_calls_cost(cluster, server, tmp_path):
    client = await ready(cluster)
    budgets = {b.account: b for b in (await client.fleet()).budgets}
    assert budgets["team"].limit_usd == pytest.approx(TEAM_LIMIT) and budgets["team"].spent_usd == 0.0
    await client.submit("team", cloud_job(tmp_path, "team", TEAM_CALLS + 2, "team"))
    await cluster.wait_job(client, "team", TEAM_CALLS)

    async def held_back():  # the rest wait, and say why
        rows = [r for r in (await client.status("team")).tasks if r.status == "submitted"]
        return rows if len(rows) == 2 and all("budget" in r.reason for r in rows) else None

    await cluster.wait_for(held_back, "two tasks held back by the budget")
    done = [r for r in (await client.status("team")).tasks if r.status == "completed"]
    assert len(done) == TEAM_CALLS == 4
    assert {r.result["offer"] for r in done} == {OFFER.id} and {r.node for r in done} <= set(RELAYS)
    assert sum(r.result["cost_usd"] for r in done) == pytest.approx(TEAM_CALLS * BILLED)
    spent = (await spend(client))["team"]
    assert spent == pytest.approx(TEAM_CALLS * BILLED) and spent <= TEAM_LIMIT
    assert len([r for r in server.requests if r[0] == "/v1/messages"]) == TEAM_CALLS  # none beyond it


async def test_a_task_retried_after_its_agent_died_is_charged_once(cluster, server, tmp_path):
    client = await ready(cluster)
    hold = server.hold()  # the first call is held before the API answers: nothing billed yet
    server.plans.append(Plan(chunks=anthropic_stream("claude-haiku-4-5"), hold=hold, hold_at=0))
    calls = len(server.requests)
    await client.submit("retry", cloud_job(tmp_path, "retry", 1, "lab"))
    await cluster.wait_for(lambda: _async(len(server.requests) > calls), "the first call to arrive")
    row = (await client.status("retry")).tasks[0]
    cluster.kill(cluster.agents[row.node])  # kill -9 mid-call: the attempt is lost, re-placed
    await cluster.wait_job(client, "retry", 1)
    done = (await client.status("retry")).tasks[0]
    assert done.attempts == 2 and done.node != row.node
    assert (await spend(client))["lab"] == pytest.approx(BILLED)  # not reserved + billed, not twice
    hold.set()
    cluster.start_relay(row.node, server)


async def test_spend_survives_a_control_plane_restart(cluster, server):
    client = await ready(cluster)
    before = await spend(client)
    calls = len(server.requests)
    cluster.restart_control()
    client = await ready(cluster)
    assert await spend(client) == pytest.approx(before)
    assert before == pytest.approx({"team": TEAM_CALLS * BILLED, "lab": BILLED})

    async def held_again():  # the held-back tasks were offered again after the restart
        rows = [r for r in (await client.status("team")).tasks if r.status == "submitted"]
        return len(rows) == 2 and all("budget" in r.reason for r in rows)

    await cluster.wait_for(held_again, "the held-back tasks waiting for budget again")
    assert len(server.requests) == calls  # still nothing placed beyond the budget
    # docs/live.md shows this cluster's `heddle fleet` spend line and its scheduler command
    (line,) = documented("text")
    assert _budget_line((await client.fleet()).budgets) == line.strip()
    (command,) = documented("bash")
    assert command.split()[:3] == ["heddle", "scheduler", "--fleet"] and "--fleet" in cluster.control.args


def documented(lang: str) -> list[str]:
    text = (REPO / "docs" / "live.md").read_text(encoding="utf-8")
    start = text.index("\n## Cloud work and budgets\n")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


async def _async(value):
    return value


def test_the_ledger_charges_each_attempt_once_and_gives_back_what_was_not_billed():
    from heddle.live.control.budget import Ledger
    from heddle.models import Fleet, FleetState
    from heddle.models.fleet_types import Budget

    state = FleetState(time_s=0.0, fleet=Fleet("f", (), budgets={"team": Budget("team", 1.0)}), nodes={})
    ledger = Ledger(state)
    ledger.reserve("t", 1, "team", 0.5)
    assert state.cloud_spend_usd["team"] == 0.5  # a placement counts at once
    assert ledger.settle("t", 1, "team", 0.2) and not ledger.settle("t", 1, "team", 0.2)  # redelivered
    assert state.cloud_spend_usd["team"] == pytest.approx(0.2) and ledger.cost("t") == pytest.approx(0.2)
    ledger.reserve("t", 2, "team", 0.5)
    ledger.release("t", 2)  # lost before it reported: the reservation goes back
    assert state.cloud_spend_usd["team"] == pytest.approx(0.2)
    assert ledger.settle("t", 2, "team", 0.1)  # its late report still counts, once
    assert state.cloud_spend_usd["team"] == pytest.approx(0.3) and ledger.charged("t", "team") == {
        "charged_usd": pytest.approx(0.3), "account": "team"}
    state.cloud_spend_usd["team"] = 0.0  # the period rolled while an attempt was out
    ledger.reserve("u", 1, "team", 0.5)
    state.cloud_spend_usd["team"] = 0.1
    ledger.release("u", 1)
    assert state.cloud_spend_usd["team"] == 0.0  # never below zero
    month = 2_592_000.0
    ledger.restore(None, "team", 0.4, at_s=month * 10 + 5, now_s=month * 10 + 50)  # this period
    ledger.restore(None, "team", 9.0, at_s=month * 10 - 5, now_s=month * 10 + 50)  # the last one
    assert state.cloud_spend_usd["team"] == pytest.approx(0.4)
