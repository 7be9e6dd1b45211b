"""What every `heddle` command shares: consoles, one-line errors, exit codes, help metavars.

Exit codes (docs/getting-started.md lists them for users):
  0  the command did what was asked;
  1  `heddle check` found an error in the inputs (it ran, the answer is "no"), or heddle
     itself failed (a bug: the message says so);
  2  the input was rejected: a bad option, a file that is missing, unreadable or invalid, an
     unknown name, an output path that cannot be written. One line on stderr names the file,
     line or field and what was expected.
This module imports nothing heavy: `heddle --help` must start as fast as typer and rich do.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["EXIT_CHECK_FAILED", "EXIT_INPUT", "LazyConsole", "console", "fail", "friendly", "guarded", "new_table", "one_line", "output_width"]

EXIT_CHECK_FAILED = 1
"""`heddle check` found an error-level problem (or heddle failed: an internal error)."""
EXIT_INPUT = 2
"""The input was rejected (the same code typer/click use for a bad command line)."""
PIPE_WIDTH = 200
"""Console width when stdout is not a terminal: rich would otherwise cut rows at 80 columns
(pipes, files and CI logs have no width of their own)."""
MAX_ERROR_CHARS = 400
"""An error line is cut here: a corrupted file can hold kilobytes of JSON in one message."""

_INPUT_ERROR_ROOTS = (
    ("heddle.models.errors", "ModelsError"),
    ("heddle.traces.errors", "TraceError"),
    ("heddle.optimizer.errors", "OptimizerError"),
    ("heddle.sim.errors", "SimError"),
    ("heddle.advisor.errors", "AdvisorError"),
    ("heddle.events.errors", "EventsError"),
    ("heddle.cli.common", "InputError"),
    ("yaml", "YAMLError"),
    ("pydantic", "ValidationError"),
)
"""(module, class) of every error that means "your input is wrong". Looked up in sys.modules
when an error arrives: a package that was never imported cannot have raised it, and importing
them all up front would cost the start-up time this module exists to save."""

F = TypeVar("F", bound=Callable[..., Any])


class InputError(ValueError):
    """A command-line value the CLI itself rejects; `guarded` prints it and exits 2."""


def console(stderr: bool = False, **options: Any) -> Console:
    """A rich console as wide as the terminal, or PIPE_WIDTH when output goes to a pipe/file;
    `options` go to rich's Console (soft_wrap=True, ...)."""
    from rich.console import Console

    return Console(stderr=stderr, width=output_width(sys.stderr if stderr else sys.stdout), **options)


def output_width(stream: IO[str]) -> int | None:
    """The width to print at on `stream`: None for a terminal (rich asks it), else $COLUMNS
    (PIPE_WIDTH when unset or not a number), at least 80."""
    if stream.isatty():
        return None
    try:
        width = int(os.environ.get("COLUMNS", PIPE_WIDTH))
    except ValueError:
        width = PIPE_WIDTH
    return max(width, 80)


class LazyConsole:
    """A module-level console made on first use: rich.console costs ~0.07 s to import, and
    `heddle --help` (plain click help) never prints through rich. It is made again when
    sys.stdout (sys.stderr) is another stream than it was made for (output redirected within
    the process, as typer's CliRunner does): its width is the new stream's."""

    def __init__(self, stderr: bool = False, **options: Any) -> None:
        self._stderr = stderr
        self._options = options
        self._console: Console | None = None
        self._stream: IO[str] | None = None

    def real(self) -> Console:
        """The rich Console itself (for rich objects that take one, such as Progress)."""
        stream = sys.stderr if self._stderr else sys.stdout
        if self._console is None or stream is not self._stream:
            self._console, self._stream = console(self._stderr, **self._options), stream
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


def new_table(*args: Any, **kwargs: Any) -> Table:
    """A rich Table (rich.table is imported on first use: it is not needed for --help)."""
    from rich.table import Table

    return Table(*args, **kwargs)


def one_line(message: str) -> str:
    """`message` on one line, cut to MAX_ERROR_CHARS (the start names the file and field)."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def fail(command: str, message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print `heddle <command>: <message>` on one line to stderr and exit with `code`."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, width=10_000, highlight=False)  # one line, whatever the width
    err.print(f"[red]heddle {command}:[/red] {escape(one_line(message))}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _is_input_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | UnicodeError):
        return True
    for module, name in _INPUT_ERROR_ROOTS:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def friendly(exc: BaseException) -> str:
    """What a user should read about `exc`: the file and what went wrong, no Python internals."""
    if isinstance(exc, OSError):
        what = (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)
        if exc.filename is not None:
            return f"{exc.filename}: {what}"
        return what
    if isinstance(exc, UnicodeDecodeError):
        return f"not a text file (byte {exc.start} is not {exc.encoding})"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        parts = []
        for e in exc.errors()[:3]:
            field = ".".join(str(p) for p in e["loc"]) or exc.title
            parts.append(f"{field}: {e['msg']}")
        return "; ".join(parts)
    return str(exc)


def _debug() -> bool:
    """Whether the `log_level` setting is `debug` (a broken settings file means no)."""
    try:
        from heddle.config import load_settings

        return load_settings().log_level == "debug"
    except Exception:  # noqa: BLE001 - the settings are not what failed here; keep the first error
        return False


def guarded(command: str) -> Callable[[F], F]:
    """Run a command so that bad input ends in one line on stderr and exit code 2.

    Anything else is a bug in heddle: one line saying so and exit code 1, with the traceback
    only when the `log_level` setting (HEDDLE_LOG_LEVEL) is `debug`.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as exc:  # the CLI's boundary: nothing leaves as a traceback
                if hasattr(exc, "exit_code") and hasattr(exc, "show"):
                    raise  # a click usage error: typer prints it with the usage line
                if _is_input_error(exc):
                    fail(command, friendly(exc))
                if _debug():
                    raise
                fail(command, f"internal error ({type(exc).__name__}: {exc}); "
                     "HEDDLE_LOG_LEVEL=debug shows the traceback", EXIT_CHECK_FAILED)

        run._heddle_guarded = True  # type: ignore[attr-defined]  # main._guard_all leaves it as it is
        return run  # type: ignore[return-value]

    return wrap


def _help_type(self: Any, ctx: Any) -> str | None:
    """The value placeholder `--help` shows: the metavar, the choices, or the option's name.

    typer 0.2x shows Python types (`<list[str]>`, `<bool>` even on flags), which mean nothing
    to someone running a command."""
    if self.param_type_name == "argument":
        return None  # the help already names an argument by its metavar (or name)
    if self.metavar is not None:
        return self.metavar
    if getattr(self, "is_flag", False) or not getattr(self, "opts", None):
        return None
    desc = self.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    return (self.name or "value").upper().replace("_", "-")


_IDENTITIES = (str, bool)
"""Annotations whose typer coercion returns a value already of that type unchanged (typer's
_parse_cli_str / _parse_cli_bool, then pydantic's lax str / bool): a `str` from the command
line, a `bool` from a flag. tests/cli/test_startup.py holds typer's own coercion to that."""


class _CoercionOnFirstValue:
    """Stands in for typer's coercion of one parameter until it has a value to change.

    typer 0.2x builds a pydantic TypeAdapter for every parameter of the commands on the path,
    even one left unset, whose value None it then returns unchanged: importing pydantic and
    building the adapters cost `heddle sim --help` ~0.2 s, and ~0.06 s of `heddle catalog show
    ID` for a string typer hands back as it came. Unset parameters now get what typer's
    RuntimeParam.coerce gives None, a `str` or `bool` (no parser) gets itself back, and the
    first other value builds typer's own coercion.
    """

    __slots__ = ("_param",)

    def __init__(self, param: Any) -> None:
        self._param = param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if param.multiple or param.nargs == -1 else None
        desc = self._param.type_descriptor
        if (desc.annotation in _IDENTITIES and type(value) is desc.annotation
                and desc.parameter_info.parser is None and desc.file_annotation is None
                and not (param.multiple or param.nargs == -1)):
            return value
        from typer._coercion import build_runtime_param

        self._param._runtime_param = built = build_runtime_param(desc)
        return built.coerce(value, param=param, ctx=ctx)


def _usage_name(self: Any) -> str:
    """An argument on the usage line as click writes it: `FILE`, `[JOB]`, `FILE...`. typer 0.2x
    writes a required one in braces (`{FILE}`), which reads like a set of choices."""
    name = self.metavar or (self.name or "").upper()
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 and not name.endswith("...") else "")


def _runtime_param(self: Any) -> Any:
    return self._runtime_param if self._runtime_param is not None else _CoercionOnFirstValue(self)


TYPER_CHECKED = "0.29."
"""The typer releases whose private coercion hook (`_TyperParameter.get_runtime_param`, and
`type_descriptor` / `typer._coercion` behind it) `install_help_format` replaces, as
tests/cli/test_startup.py holds. Under another typer (pyproject allows any >= 0.12) the hook
is left alone: typer's own coercion is slower to start, never wrong."""


def install_help_format() -> None:
    """Make typer's help show placeholders and defaults, not Python types, and build typer's
    coercion of a parameter only when it gets a value (idempotent)."""
    import typer
    from typer import core

    for cls in (core.TyperOption, core.TyperArgument):
        # An untested typer without these hooks keeps its own help: tests/cli catch the types.
        if hasattr(cls, "display_type_rich"):
            cls.display_type_rich = _help_type
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = _usage_name
    # the same for the coercion hook: tests/cli/test_startup.py notices pydantic in --help
    if typer.__version__.startswith(TYPER_CHECKED) and hasattr(core, "_TyperParameter") \
            and hasattr(core._TyperParameter, "get_runtime_param"):
        core._TyperParameter.get_runtime_param = _runtime_param
