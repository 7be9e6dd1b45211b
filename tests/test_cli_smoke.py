from typer.testing import CliRunner

from heddle.cli.main import app


def test_help_lists_every_command_group():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("catalog", "models", "trace", "events", "place", "sim", "advise"):
        assert name in result.output
