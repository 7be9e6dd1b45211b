"""The gateway's one error type: an HTTP status, a reason in words and a machine code, written
out in each protocol's error shape by the route that answers (OpenAI, Ollama or Anthropic)."""

from __future__ import annotations

__all__ = ["GatewayError"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
          504: "timeout_error"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 504: "timeout_error"}
"""The Messages API's error ``type`` by status (its documented ones; any other 5xx: api_error)."""


class GatewayError(Exception):
    """A request the gateway answers with an error. Raised by the request rules and the task
    run; caught by the routes, which answer in their protocol's shape (never a hang)."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after_s = retry_after_s

    @classmethod
    def at(cls, field: str, what: str, code: str = "invalid_request", status: int = 400) -> GatewayError:
        """A request field's error, worded ``field: what`` and naming the field as ``param``:
        how every route says which field it refused and what it expected."""
        return cls(status, f"{field}: {what}", code, param=field)

    @property
    def kind(self) -> str:
        """OpenAI's error ``type`` for the status."""
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def openai(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def ollama(self) -> dict:
        return {"error": self.message}

    def anthropic(self) -> dict:
        """The Messages API's shape; the machine code rides beside the message (its clients
        read ``error.type`` and ``error.message``)."""
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message, "code": self.code,
                                           **({"param": self.param} if self.param else {})}}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, int(-(-self.retry_after_s // 1))))}  # whole seconds, up
