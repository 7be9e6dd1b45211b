"""A real cluster with the gateway in front, for the gateway tests and the benchmark:
nats-server, the control plane, agents (each with a stand-in Ollama server on loopback) and
`heddle gateway`, each a separate OS process; waits are on conditions, never on sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import psutil
import yaml

from heddle.gateway.serve import READY_LINE
from heddle.live import protocol as p
from tests.live.backendkit import MLX_MODEL
from tests.live.clusterkit import REPO, WAIT_S, Cluster, agent_command, start_until_ready
from tests.live.llmstandin import StandIn

MODEL = "llama3.1:8b-instruct-q4_K_M"
"""What the Ollama stand-ins serve (the catalog's llama-3.1-8b q4_k_m)."""
OPENAI_MODEL = "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
"""What an OpenAI-compatible stand-in serves (the catalog's qwen2.5-7b q4_k_m): requests for
it go to that node only."""
REASONING_MODELS = {"ollama": ("gpt-oss:20b", {"parameter_size": "20.9B", "quantization_level": "MXFP4"}),
                    "openai": ("gpt-oss-20b-Q8_0.gguf", {})}
"""The reasoning model each kind of stand-in serves too (the shared cluster's, conftest): the
catalog's gpt-oss-20b, mxfp4 on the Ollama ones, q8_0 on the OpenAI-compatible one (asked for
by that quant, a request goes there, unless that node is busy: `wait_idle`)."""
MLX_STANDIN_MODULES = {
    "mlx/__init__.py": "",
    "mlx/core.py": "from types import SimpleNamespace\n\nfrom mlx_lm import LM\n\nrandom = SimpleNamespace(seed=LM.seed)\n",
    "mlx_lm/__init__.py": ("from tests.live.mlxstandin import StandInMlxLm\n\nLM = StandInMlxLm()\n"
                           "load, stream_generate = LM.load, LM.stream_generate\n"),
    "mlx_lm/sample_utils.py": "from mlx_lm import LM\n\nmake_sampler, make_logits_processors = LM.make_sampler, LM.make_logits_processors\n",
}
"""``mlx`` and ``mlx_lm`` as heddle's MLX backend imports them (`import_mlx_lm`), over one stand-in."""


class GatewayCluster(Cluster):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.standins: dict[str, StandIn] = {}
        self.embeddings: dict[str, tuple[str, dict[str, str]] | None] = {}  # node -> its embedding model
        self.also: dict[str, tuple[tuple[str, dict[str, str]], ...]] = {}  # node -> its other models
        self.gateway: subprocess.Popen | None = None
        self.gateway_log: list[str] = []
        self.base_url = ""
        self.probe_key = ""  # a key of the gateway's, to ask what it lists

    def start_llm_agent(self, node: str, owner: str, slots: int = 2, trust: tuple[str, ...] = (),
                        server: str = "ollama", embedding: tuple[str, dict[str, str]] | None = None,
                        also: tuple[tuple[str, dict[str, str]], ...] = (), model: str | None = None,
                        cold: tuple[str, ...] = ()) -> StandIn:
        """An agent whose model server is a stand-in speaking Ollama's protocol (serving
        `MODEL`) or, ``server="openai"``, the OpenAI-compatible one (serving `OPENAI_MODEL`);
        ``embedding``: an embedding model it serves too (name, Ollama details); ``also``: more
        models it serves (a vision model); ``model``: another name for the stand-in to serve;
        ``cold``: served names it has installed but not loaded (before its agent first asks)."""
        standin = self.standins[node] = StandIn(model or (MODEL if server == "ollama" else OPENAI_MODEL),
                                                embedding=embedding, also=also)
        standin.loaded[:] = [name for name in standin.loaded if name not in cold]
        self.agent_specs[node] = (owner, slots, trust)
        self.embeddings[node] = embedding
        self.also[node] = also
        self.agents[node] = subprocess.Popen(
            [*agent_command(self.url, node, owner, slots, trust), f"--{server}-url", standin.url],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "HEDDLE_DATA_DIR": str(self.tmp / f"data-{node}")},  # its speed records
        )
        return standin

    def start_claude_agent(self, node: str, owner: str, slots: int = 1) -> StandIn:
        """An agent with an Anthropic key whose Claude API is a stand-in speaking the Messages
        API (it offers every catalog Claude offer and calls it beside its slots)."""
        standin = self.standins[node] = StandIn(MODEL)
        self.agent_specs[node] = (owner, slots, ())
        self.agents[node] = subprocess.Popen(
            [*agent_command(self.url, node, owner, slots, ()), "--anthropic-base-url", standin.url],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "ANTHROPIC_API_KEY": "sk-test", "HEDDLE_DATA_DIR": str(self.tmp / f"data-{node}")},
        )
        return standin

    def start_mlx_agent(self, node: str, owner: str, slots: int = 1, device: str = "m1-7") -> None:
        """An agent running heddle's MLX backend (`MlxExecutor`, serving `MLX_MODEL`) on a
        stand-in ``mlx_lm`` (tests/live/mlxstandin.py) put first on the agent's import path:
        mlx-lm runs only on Apple silicon, the backend and everything it declares are heddle's."""
        packages = self.tmp / f"mlx-standin-{node}"
        for name, text in MLX_STANDIN_MODULES.items():
            (packages / name).parent.mkdir(parents=True, exist_ok=True)
            (packages / name).write_text(text, encoding="utf-8")
        command = [device if arg == "m1-7" else arg for arg in agent_command(self.url, node, owner, slots, ())]
        self.agent_specs[node] = (owner, slots, ())
        self.agents[node] = subprocess.Popen(
            [*command, "--mlx-model", MLX_MODEL], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "HEDDLE_DATA_DIR": str(self.tmp / f"data-{node}"),
                 "PYTHONPATH": os.pathsep.join([str(packages), str(REPO)])},
        )

    def restart_llm_agent(self, node: str) -> None:
        """A killed node back, with a fresh stand-in, once the control plane sees it active."""
        self.standins.pop(node).stop()
        owner, slots, trust = self.agent_specs[node]
        self.start_llm_agent(node, owner, slots, trust, embedding=self.embeddings[node], also=self.also[node])
        self.wait_models({node})

    def start_gateway(self, keys: Path, *extra: str) -> None:
        args = [sys.executable, "-m", "heddle.cli.gateway", "--nats", self.url, "--port", "0",
                "--keys", str(keys), *extra]
        self.probe_key = yaml.safe_load(keys.read_text(encoding="utf-8"))["keys"][0]["key"]
        self.gateway, line = start_until_ready(args, READY_LINE, self.gateway_log)
        self.base_url = re.search(r"(http://\S+)", line).group(1)

    def close(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.kill()
            self.gateway.wait()
        super().close()
        for standin in self.standins.values():
            standin.stop()

    # -- waiting, from synchronous tests -------------------------------------------------------
    def query(self, action: Callable[[Any], Any]) -> Any:
        """Run ``await action(client)`` with a fresh control client."""

        async def go():
            client = await self.client()
            try:
                return await action(client)
            finally:
                await client.close()

        return asyncio.run(go())

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.05)  # polling a condition, not synchronising on time
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n"
                             + "".join(self.control_log[-20:]) + "".join(self.gateway_log[-20:]))

    def task_row(self, task_id: str) -> Any:
        job = task_id.rsplit("-", 1)[0]
        reply = self.query(lambda c: c.status(job))
        return next((row for row in reply.tasks if row.task_id == task_id), None)

    def wait_task(self, task_id: str, status: str) -> Any:
        return self.wait_until(
            lambda: (row := self.task_row(task_id)) is not None and row.status == status and row,
            f"task {task_id} {status}")

    def wait_idle(self, node: str) -> None:
        """Until the control plane counts nothing running on ``node``. A caller has its answer
        before the task's end reaches the control plane: a request sent at once may find the
        node busy, and one for a model that node alone serves (gpt-oss-20b q8_0, dave-pc's
        `REASONING_MODELS` one, with thousands of output tokens to wait for) is then placed on
        a node that would have to load it (and whose server does not have it)."""
        async def idle(client):
            return any(n.node_id == node and n.running == 0 for n in (await client.fleet()).nodes)

        self.wait_until(lambda: self.query(idle), f"nothing running on {node}")

    def wait_models(self, nodes: set[str]) -> None:
        """Until every node is active in the control plane's view and, with the gateway up,
        listed by it as serving the model. An agent's first capacity report can come before
        it has asked its model server what is loaded, so "active" alone does not mean
        "serves the model" (an /api/tags asked in between listed nothing)."""
        async def present(client):
            reply = await client.fleet()
            return {n.node_id for n in reply.nodes if n.status == "active"} >= nodes

        self.wait_until(lambda: self.query(present), f"nodes {sorted(nodes)} active")
        if self.base_url:
            self.wait_until(lambda: self.listed() >= nodes, f"nodes {sorted(nodes)} listed as serving")

    def listed(self) -> set[str]:
        """The nodes the gateway's /v1/models says serve a model now."""
        reply = httpx.get(self.base_url + "/v1/models", timeout=WAIT_S,
                          headers={"Authorization": "Bearer " + self.probe_key})
        reply.raise_for_status()
        owners = [m["owned_by"].removeprefix("heddle:") for m in reply.json()["data"]]
        return {node for owner in owners for node in owner.split(",")}

    def serving_story(self) -> str:
        """Who serves what, as each part sees it: the agents' capacity reports now, the control
        plane's fleet, and the gateway's log of the nodes it counts (the evidence a wrong
        /api/tags or /v1/models needs: it listed nothing once, with three nodes up)."""

        async def reports():
            heard: dict[str, Any] = {}
            nc = await nats.connect(self.url)
            try:
                sub = await nc.subscribe(p.all_nodes(p.CAPACITY))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):  # a report from each node, if they report
                        async for msg in sub.messages:
                            try:
                                report = p.decode(msg.data, p.CapacityReport)
                            except p.ProtocolError as exc:
                                heard[msg.subject] = f"refused: {exc}"
                                continue
                            heard[report.node_id] = (report.status.value, report.seq, [
                                f"{m.model}:{m.quant}" for m in report.resident_models])
                            if set(heard) >= set(self.agents):
                                break
            finally:
                await nc.close()
            return heard

        def told(what: Callable[[], str]) -> str:
            try:
                return what()
            except Exception as exc:  # noqa: BLE001 -- evidence for a failure: never a new one
                return f"({type(exc).__name__}: {exc})"

        return "\n".join([
            "agents report now: " + told(lambda: str(asyncio.run(reports()))),
            "control plane: " + told(lambda: "; ".join(
                f"{n.node_id} {n.status} (last report {n.last_report_s_ago} s ago, {n.running} running)"
                for n in self.query(lambda c: c.fleet()).nodes)),
            *("gateway: " + line.rstrip() for line in self.gateway_log
              if " serves " in line or "capacity report" in line or "refused" in line),
            "gateway, its last lines:", *(line.rstrip() for line in self.gateway_log[-10:]),
        ])


@contextlib.contextmanager
def one_node(tmp: Path, node: str, key: dict[str, Any], slots: int) -> Iterator[GatewayCluster]:
    """A cluster of its own: one agent of ``slots`` owned by ``key``'s owner, behind a gateway
    holding ``key``."""
    cluster = GatewayCluster(tmp)
    try:
        cluster.start_control()
        cluster.start_llm_agent(node, key["owner"], slots=slots)
        cluster.start_gateway(write_keys(tmp / "keys.yaml", [key]))
        cluster.wait_models({node})
        yield cluster
    finally:
        cluster.close()


def write_keys(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"keys": entries}), encoding="utf-8")
    return path


@contextlib.contextmanager
def bench_cluster(key: dict[str, Any], node: str, **agent: Any) -> Iterator[tuple[GatewayCluster, StandIn, dict[str, Any]]]:
    """A benchmark's cluster: the control plane, one agent of ``key``'s owner with 4 slots (its
    stand-in server's models: ``agent``, `GatewayCluster.start_llm_agent`'s), the gateway
    holding ``key``; with the processes whose CPU a benchmark reads."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = GatewayCluster(Path(tmp))
        try:
            cluster.start_control()
            standin = cluster.start_llm_agent(node, key["owner"], slots=4, **agent)
            cluster.start_gateway(write_keys(Path(tmp) / "keys.yaml", [key]))
            cluster.wait_models({node})
            yield cluster, standin, {"gateway": psutil.Process(cluster.gateway.pid),
                                     "control": psutil.Process(cluster.control.pid),
                                     "agent": psutil.Process(cluster.agents[node].pid)}
        finally:
            cluster.close()


def walls(values: list[float]) -> str:
    """A benchmark's wall times (seconds) as ``p50 X ms p90 Y``."""
    ordered = sorted(values)
    p50, p90 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.9))
    return f"p50 {p50:.1f} ms p90 {p90:.1f}"
