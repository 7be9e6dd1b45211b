"""`heddle agent`: run this machine's node agent until it is drained (SIGTERM, Ctrl-C or
`heddle drain NODE`). With no URL it finds the cluster on the LAN and joins it with the code
`heddle up` printed; after that it connects with its stored credentials. Also runnable as
``python -m heddle.cli.agent`` (faster start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heddle.cli.common import LazyConsole

err = LazyConsole(stderr=True)


def agent(
    nats: Annotated[str | None, typer.Option("--nats", help="NATS URL of the cluster (default: the one this machine joined, else found on the LAN).")] = None,
    join_code: Annotated[str | None, typer.Option("--join-code", help="The code `heddle up` printed (first start only; asked on a terminal).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Which cluster found on the LAN, if several.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where this machine's credentials live (default ~/.heddle).")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0.1, help="Seconds to listen for clusters on the LAN.")] = 5.0,
    node_id: Annotated[str | None, typer.Option("--node-id", help="This node's id (default: the host name).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Catalog device id (default: guessed from the chip).")] = None,
    slots: Annotated[int | None, typer.Option("--slots", help="Tasks run at once (default: CPU count).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Whose machine this is (default: the OS user).")] = None,
    trust: Annotated[str | None, typer.Option("--trust", help="Owners whose personal work may run here, comma-separated.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Node labels, key=value pairs separated by commas.")] = None,
    processors: Annotated[str | None, typer.Option("--processors", help="Modules processor steps may come from, comma-separated (default: any).")] = None,
    report_every: Annotated[float | None, typer.Option("--report-every", help="Seconds between capacity reports (default 2).")] = None,
    drain_deadline: Annotated[float | None, typer.Option("--drain-deadline", help="Seconds in-flight work gets on a drain (default 30).")] = None,
    cpu_limit: Annotated[float | None, typer.Option("--cpu-limit", help="Share of one core each burn step may use, 0-1 (like docker --cpus per slot; default: all of it).")] = None,
    lm_studio_url: Annotated[str | None, typer.Option("--lm-studio-url", help="LM Studio server URL (runs LLM work; wins over Ollama).")] = None,
    openai_url: Annotated[str | None, typer.Option("--openai-url", help="Another OpenAI-compatible server URL (llama.cpp, vLLM, mlx-lm).")] = None,
    ollama_url: Annotated[str | None, typer.Option("--ollama-url", help="Ollama server URL (runs LLM work).")] = None,
    mlx_model: Annotated[str | None, typer.Option("--mlx-model", help="Run this MLX model in-process (a directory or cached repo; the mlx extra).")] = None,
    anthropic_base_url: Annotated[str | None, typer.Option("--anthropic-base-url", help="Claude API base URL (the key comes from ANTHROPIC_API_KEY or the config file).")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning or error.")] = None,
) -> None:
    """Run the node agent: report capacity, run assigned work, drain on SIGTERM."""
    import logging

    from pydantic import ValidationError

    from heddle.config import load_settings
    from heddle.live.agent.settings import agent_settings, run_agent
    from heddle.live.cluster.join import JoinError
    from heddle.models.errors import ModelsError

    try:
        settings = load_settings({
            "nats_url": nats, "node_id": node_id, "device": device, "slots": slots,
            "owner": owner, "trust": trust, "labels": labels, "processors": processors, "report_every_s": report_every,
            "drain_deadline_s": drain_deadline, "log_level": log_level, "cpu_limit": cpu_limit,
            "lm_studio_url": lm_studio_url, "openai_url": openai_url, "ollama_url": ollama_url,
            "mlx_model": mlx_model,
            "anthropic_base_url": anthropic_base_url, "data_dir": data_dir,
        })
        chosen = agent_settings(settings)
        chosen = chosen.model_copy(update=_membership(settings, chosen, join_code, cluster, wait))
        # After joining: the backends import their SDKs, which takes seconds on a busy machine.
        from heddle.live.backends.settings import backend_settings, build_backends

        backends = backend_settings(settings)
    except ValidationError as exc:
        e = exc.errors()[0]
        err.print(f"[red]error:[/] option --{str(e['loc'][0]).replace('_', '-')}: {e['msg']}")
        raise typer.Exit(2) from None
    except (ModelsError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except JoinError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if chosen.device is None:  # the machine's tools name the exact variant when they can
        from heddle.live.backends.probes import detect_device

        probed = detect_device()
        logging.getLogger("heddle.live.agent").info(
            "device %s: %s", probed.device or "not in the catalog", probed.reason)
        if probed.device is not None:
            chosen = chosen.model_copy(update={"device": probed.device})
    raise typer.Exit(run_agent(chosen, build_backends(backends)))


def _membership(settings, chosen, code: str | None, cluster: str | None, wait: float) -> dict:
    """Where and as whom the agent connects: stored credentials, or a join first."""
    import sys

    from heddle.cli.cluster import discovered, say_pinned
    from heddle.live.cluster.membership import node_credentials

    def ask_code(url: str) -> str | None:
        """From the terminal (hidden), else one line of standard input (none: no code)."""
        if sys.stdin.isatty():
            return typer.prompt(f"join code for {url} (printed by `heddle up`)", hide_input=True)
        err.print(f"waiting for the join code of {url} on standard input", highlight=False)
        return sys.stdin.readline().strip() or None

    from heddle.live.cluster.join import Credentials

    joining = Credentials.find(settings.data_dir) is None
    credentials = node_credentials(
        settings.data_dir, nats_url=settings.nats_url, node_id=chosen.node_id if settings.node_id else None,
        code=code, find=lambda: discovered(cluster, wait), ask_code=ask_code, device=chosen.device)
    if credentials is None:
        return {}
    if joining:
        say_pinned(credentials, None if settings.nats_url else "found on the LAN")
    if settings.nats_url is None:
        err.print(f"connecting to {credentials.nats_url} as node {credentials.user}", highlight=False)
    return {"nats_url": credentials.nats_url, "node_id": credentials.user, "credentials": credentials}


if __name__ == "__main__":
    typer.run(agent)
