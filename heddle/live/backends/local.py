"""A local LLM server as an executor: model discovery, model choice and the HTTP streaming
loop (429 retries, failure reasons) shared by the Ollama and OpenAI-compatible backends.

Discovery runs in the background: the first `resident_models()` call (the agent's first
capacity report) starts a refresh every ``refresh_every_s``; `resident_models()` itself only
reads the last inventory. A run whose model is not in the inventory refreshes it once first
(a model pulled or loaded since the last refresh is found).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from heddle.live.agent.executors import ExecutionError, Executor, Progress
from heddle.live.backends.common import (
    DEFAULT_TIMEOUTS,
    BackendTimeouts,
    LlmCall,
    StreamMeter,
    http_failure,
    llm_call,
    retry_after_s,
)
from heddle.live.backends.embed import embedding, run_embedding
from heddle.live.backends.generation import ALL
from heddle.live.backends.http import HttpClient, SentRequest
from heddle.live.backends.names import ServedModel
from heddle.live.backends.worker import check_output
from heddle.live.protocol import Assignment

__all__ = ["LocalServer"]

log = logging.getLogger("heddle.live.backends")

DEFAULT_REFRESH_EVERY_S = 30.0
"""Model discovery interval: loading a model takes seconds to minutes, so this is fresh enough."""
DRAIN_S = 1.0
"""Longest the rest of a reply after the server's last message is waited for: the reply is
read to its end (the chunked terminator, usually in the same packet), as only a fully read
connection is kept alive, and a new one per request costs CPU (connect, close) and a round
trip before the first token. A server that keeps talking after its last message loses the
connection instead; the result stands either way."""


class LineReader(Protocol):
    """A backend's reader of its server's streamed answer, one line at a time."""

    reported: dict[str, Any] | None  # the result fields the server reported, once it is done

    def __call__(self, line: str) -> bool:
        """Take one line (into the meter and the progress); True at the server's last one.
        Raises ExecutionError (the server reported a failure) or a JSON error."""

    def unfinished(self) -> str:
        """The reason when the stream ended before the server's last message."""


@dataclass(slots=True)
class _Begun:
    """A request `LocalServer.begin` wrote; `run` of the same server reads its answer."""

    server: LocalServer
    call: LlmCall
    name: str
    path: str
    body: dict[str, Any]
    sent: SentRequest
    at: float  # monotonic time it was sent: the stream's TTFT counts from there

    def close(self) -> None:
        self.sent.close()


class LocalServer(Executor):
    """One local server (an Ollama or an OpenAI-compatible endpoint)."""

    backend: str = "local"  # name in results and reasons: "ollama", "lm-studio", "openai"
    serves_models = True  # its inventory is reported as installed (heddle.models.installed)
    sends: frozenset[str] = ALL  # the generation fields `_request` puts in the body
    embed_api: str = ""  # its embeddings protocol (heddle.live.backends.embed.APIS), if any

    def __init__(self, url: str, *, kinds: tuple[str, ...], backend: str | None = None,
                 timeouts: BackendTimeouts = DEFAULT_TIMEOUTS,
                 refresh_every_s: float = DEFAULT_REFRESH_EVERY_S) -> None:
        self.url = url.rstrip("/")
        self.kinds = kinds
        if backend is not None:
            self.backend = backend
        self.timeouts = timeouts
        self.refresh_every_s = refresh_every_s
        self.inventory: tuple[ServedModel, ...] = ()
        self.discovered_at: float | None = None  # monotonic; None: never answered
        self.discovery_error: str | None = None
        self._client = HttpClient(self.url, connect_s=timeouts.connect_s, read_s=timeouts.read_s)
        self._refresher: asyncio.Task | None = None
        self._said_unknown: set[str] = set()

    # --- discovery ------------------------------------------------------------------------

    @abstractmethod
    async def _discover(self) -> list[ServedModel]:
        """What the server offers now (raises httpx2 errors, ValueError on bad JSON)."""

    async def refresh(self) -> None:
        """Read the server's inventory now; a failure keeps the last one and says why."""
        try:
            models = await self._discover()
        except (httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
            reason = (http_failure(self.backend, self.url, exc) if isinstance(exc, httpx2.HTTPError)
                      else f"{self.backend} at {self.url}: bad model list: {exc}")
            if reason != self.discovery_error:
                log.warning("model discovery: %s", reason)
            self.discovery_error = reason
            return
        self.inventory, self.discovered_at, self.discovery_error = tuple(models), time.monotonic(), None
        for m in models:
            if not m.known and m.name not in self._said_unknown:
                self._said_unknown.add(m.name)
                log.info("%s offers %r: not a catalog (model, quant); not reported as resident",
                         self.backend, m.name)

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_every_s)

    def resident_models(self) -> Iterable[tuple[str, str]]:
        if self._refresher is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to start yet
                self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return [(m.model, m.quant) for m in self.inventory if m.loaded and m.known]

    def installed_models(self) -> Iterable[tuple[str, str]] | None:
        if self.discovered_at is None:  # not asked yet (resident_models starts the refresher)
            return None
        return [(m.model, m.quant) for m in self.inventory if m.known]

    def offers(self, model: str, quant: str | None) -> ServedModel | None:
        """The served model for a catalog (model, quant), a loaded one first."""
        found = [m for m in self.inventory if m.model == model and (quant is None or m.quant == quant)]
        return max(found, key=lambda m: m.loaded) if found else None

    def _known_name(self, assignment: Assignment) -> str | None:
        """The served name, if known without asking the server."""
        options, task = assignment.executor.options, assignment.task
        if isinstance(options.get("model"), str):  # the server's own name, used as given
            return options["model"]
        if self.discovered_at is None or task.model is None:
            return None
        served = self.offers(task.model, task.quant)
        return None if served is None else served.name

    async def _served_name(self, assignment: Assignment) -> str:
        task = assignment.task
        if (name := self._known_name(assignment)) is not None:
            return name
        if self.discovered_at is None:  # the first task may come before the first refresh
            await self.refresh()
        if task.model is None:
            loaded = [m for m in self.inventory if m.loaded]
            if loaded:
                return loaded[0].name
            raise ExecutionError(f"{self.backend}: the task names no model and none is loaded "
                                 f"at {self.url}")
        served = self.offers(task.model, task.quant)
        if served is None:
            await self.refresh()
            served = self.offers(task.model, task.quant)
        if served is None:
            wanted = f"{task.model} {task.quant or '(any quant)'}"
            names = ", ".join(m.name for m in self.inventory) or "nothing"
            raise ExecutionError(f"{self.backend} at {self.url} does not offer {wanted} "
                                 f"(offers: {names})" + (f"; {self.discovery_error}"
                                                         if self.discovery_error else ""))
        return served.name

    # --- running --------------------------------------------------------------------------

    @abstractmethod
    def _request(self, name: str, call: LlmCall) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of a streaming chat request."""

    @abstractmethod
    def _reader(self, meter: StreamMeter, progress: Progress) -> LineReader:
        """The reader of one streamed answer, into ``meter``."""

    def begin(self, assignment: Assignment, progress: Progress) -> None:
        """The request goes to the server now, on a kept-alive connection, when its model's
        name is known without asking the server (else `run` does it all)."""
        try:
            if embedding(assignment) is not None:
                return  # one document, asked for by `run`
            call = llm_call(assignment)
        except ExecutionError:
            return  # `run` says why
        name = self._known_name(assignment)
        if name is None:
            return
        path, body = self._request(name, call)
        sent = self._client.send_now("POST", path, body)
        if sent is not None:
            progress.begun = _Begun(self, call, name, path, body, sent, time.monotonic())

    async def run(self, assignment: Assignment, progress: Progress) -> Any:
        if (ask := embedding(assignment)) is not None:
            return await run_embedding(self, assignment, ask, progress)
        begun, progress.begun = progress.begun, None
        mine = begun if isinstance(begun, _Begun) and begun.server is self else None
        if begun is not None and mine is None:
            begun.close()  # another backend's (the router chose again after a refresh)
        if mine is not None:
            call, name, path, body, sent = mine.call, mine.name, mine.path, mine.body, mine.sent
        else:
            call = llm_call(assignment)
            name = await self._served_name(assignment)
            path, body = self._request(name, call)
            sent = None
        retries = 0
        while True:
            meter = StreamMeter(self.backend, self.url)
            if sent is not None and mine is not None:
                meter.started_at = mine.at  # the request left then
            try:
                async with self._client.stream("POST", path, body, sent) as response:
                    sent = None  # a retry after a 429 sends it again
                    if response.status_code == 429:
                        wait = retry_after_s(response.headers)
                        if (wait is not None and wait <= self.timeouts.max_retry_wait_s
                                and retries < self.timeouts.rate_limit_retries):
                            retries += 1
                            await asyncio.sleep(wait)
                            continue
                        after = "no Retry-After" if wait is None else f"Retry-After {wait:g} s"
                        raise ExecutionError(f"{self.backend} at {self.url}: rate limited "
                                             f"(429, {after}; {retries} retries)")
                    if response.status_code >= 400:
                        text = (await response.read()).decode(errors="replace")[:300]
                        raise ExecutionError(f"{self.backend} at {self.url}: HTTP "
                                             f"{response.status_code}: {text}")
                    read = self._reader(meter, progress)
                    await response.feed_lines(read, DRAIN_S)
                    if read.reported is None:
                        raise ExecutionError(read.unfinished())
                    reported = read.reported
            except httpx2.HTTPError as exc:
                raise ExecutionError(http_failure(self.backend, self.url, exc, meter)) from None
            except json.JSONDecodeError as exc:
                raise ExecutionError(f"{self.backend} at {self.url}: malformed JSON in the "
                                     f"stream: {exc}") from None
            # Local work is not billed per call: the control plane prices it (energy) itself.
            reported["model"] = reported.get("model") or name
            return check_output(call.worker, meter.result(
                **reported, cost_usd=0.0, account=assignment.task.account, rate_limit_retries=retries,
                **call.generation.report(self.sends)))

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self._client.aclose()
