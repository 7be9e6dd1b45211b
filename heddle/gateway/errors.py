"""The gateway's one error type: an HTTP status, a reason in words and a machine code, written
out in each protocol's error shape by the route that answers (OpenAI or Ollama)."""

from __future__ import annotations

__all__ = ["GatewayError"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
          504: "timeout_error"}


class GatewayError(Exception):
    """A request the gateway answers with an error. Raised by the request rules and the task
    run; caught by the routes, which answer in their protocol's shape (never a hang)."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after_s = retry_after_s

    @property
    def kind(self) -> str:
        """OpenAI's error ``type`` for the status."""
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def openai(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def ollama(self) -> dict:
        return {"error": self.message}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, int(-(-self.retry_after_s // 1))))}  # whole seconds, up
