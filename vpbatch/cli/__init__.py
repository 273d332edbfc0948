"""The `vpbatch` command: takes argv, gives calls into the stages and their printed results.

Click wiring only: each subcommand lives in its own module here, parses its options, calls one
library function of a stage, and prints. Errors a user can act on become one line and an exit
code, not a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from typing import Any, TextIO

import click

import vpbatch.providers  # noqa: F401 (registers the builtin providers)
from vpbatch.errors import CorruptLinesWarning, ExitCode, VPBatchError

__all__ = ["main"]

# name -> "module:attribute". Loaded lazily so `vpbatch --help` stays fast and one broken
# command cannot take the others down.
COMMANDS: dict[str, str] = {
    "data": "vpbatch.cli.data:data",
    "import-official": "vpbatch.cli.import_official:import_official",
    "score": "vpbatch.cli.score:score",
    "audit": "vpbatch.cli.audit:audit",
    "run": "vpbatch.cli.run:run",
    "plan": "vpbatch.cli.plan:plan",
    "models": "vpbatch.cli.models:models",
    "status": "vpbatch.cli.status:status",
    "merge": "vpbatch.cli.merge:merge",
    "sim": "vpbatch.cli.sim:sim",
    "report": "vpbatch.cli.report:report",
    "export": "vpbatch.cli.export:export",
    "log": "vpbatch.cli.log:log",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # Only commands whose module exists, so a partial install still prints its help.
        return sorted(n for n, t in COMMANDS.items() if importlib.util.find_spec(t.split(":")[0]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="vpbatch")
def cli() -> None:
    """Value Portrait sweeps of language models: run, resume, score, report."""


_show_python_warning = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Our warnings as one line a user reads ("warning: ..."), not Python's source excerpt."""
    if issubclass(category, CorruptLinesWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _show_python_warning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user-facing errors become one clear line and an exit code, not a traceback."""
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", CorruptLinesWarning)  # the reader says each log once
    try:
        return cli.main(args=argv, prog_name="vpbatch", standalone_mode=False)
    except VPBatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
