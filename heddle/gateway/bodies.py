"""What every route's request body tells the gateway, in one shape: `TaskBody`, the base of
each protocol's request models (OpenAI's chat and completions, Ollama's chat and generate,
the embeddings routes, Anthropic's messages). `GatewayApp._begin` asks each body the same questions; a route's
model answers those its protocol has and the base says "none" to the others (no prompt to
continue, no tools, no images, no embedding, no output bound, no generation options), so a body never
has to be probed for what it can answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from heddle.live.backends.generation import NONE, Generation

if TYPE_CHECKING:
    from heddle.gateway.images import ImageSet
    from heddle.gateway.tasks import Chat, ModelRef
    from heddle.gateway.tools import ToolSpec

__all__ = ["TaskBody"]


class TaskBody(BaseModel):
    """A request body that becomes one task. Unknown fields are ignored, as OpenAI-compatible
    servers and Ollama do (apps send many)."""

    model_config = ConfigDict(extra="ignore")
    embeds: ClassVar[bool] = False
    """An embeddings route's body: its model must be an embedding model (a chat's must not)."""

    model: str = Field(min_length=1)

    def load_only(self) -> str | None:
        """Ollama's ask to load (``"load"``) or unload (``"unload"``) the model and nothing
        else, answered without a task (`loaded`); None: a task."""
        return None

    def loaded(self, ref: ModelRef, reason: str, nodes: list[str]) -> dict[str, Any]:
        """The answer to a `load_only` ask: ``nodes``, where the model is resident now."""
        raise NotImplementedError(f"{type(self).__name__} has no load-only ask")

    def completion(self) -> dict[str, Any] | None:
        """The payload's ``completion`` (a prompt to continue), or None: a chat."""
        return None

    def chat_messages(self) -> tuple[list[dict[str, Any]], str | None]:
        """(messages, system prompt) of a chat."""
        return [], None

    def embedding(self) -> dict[str, Any] | None:
        """The payload's ``embed`` of an embeddings route, or None."""
        return None

    def tool_spec(self) -> ToolSpec | None:
        """The request's tools, checked, or None."""
        return None

    def image_set(self) -> ImageSet | None:
        """The images of `chat_messages`' messages (heddle.gateway.images), or None."""
        return None

    def output_bound(self) -> int | None:
        """The caller's bound on output tokens, or None."""
        return None

    def generation(self) -> Generation:
        """The generation options (sampling, format, think), neutral and checked."""
        return NONE

    def think_field(self) -> str:
        """The field as sent that asked a reasoning model to think (`generation`'s ``think``:
        heddle.gateway.thinking), which a refusal names."""
        return "think"

    def fit(self, chat: Chat) -> Chat:
        """The chat as the protocol reads its bounds once the model is known (Anthropic's
        ``max_tokens`` is a ceiling: heddle.gateway.anthropic_api); the others as it is."""
        return chat
