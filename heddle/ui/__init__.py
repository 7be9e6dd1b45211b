"""heddle ui: the fleet, the work, what-ifs and purchase advice in a browser (docs/ui.md).

It sits on top of the other packages and only calls their functions: the live runtime's
client and capacity stream for Fleet and Work, `heddle.sim` for What-if, `heddle.advisor`
for Advice.
"""

from heddle.ui.settings import DEFAULT_PORT, UiError, UiSettings, check_binding, is_loopback

__all__ = ["DEFAULT_PORT", "UiError", "UiSettings", "check_binding", "create_app", "is_loopback", "serve"]


def create_app(settings: UiSettings):
    """The FastAPI app (imported on use: FastAPI is not needed to read the settings)."""
    from heddle.ui.app import create_app as build

    return build(settings)


def serve(settings: UiSettings, say=print) -> None:
    from heddle.ui.server import serve as run

    run(settings, say)
