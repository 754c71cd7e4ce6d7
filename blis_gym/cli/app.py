"""The ``blis`` command line: mounts each command; ``blis run`` takes BLIS's own flags.

Results go to stdout; diagnostics go to stderr at the ``--log`` level.
Any bad input prints one ``error:`` line and exits with code 2.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

try:  # typer >= 0.26 vendors its own click
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as cx

from ..errors import BlisError
from . import (
    agent_commands,
    calibrate_command,
    convert_command,
    observe_command,
    replay_command,
    run_command,
    serve_command,
    sweep_command,
)

app = typer.Typer(
    name="blis",
    help="blis-gym: a deterministic LLM inference cluster simulator (a Python BLIS).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Simulate LLM inference clusters without GPUs."""


# Commands that take blis run flags after their own keep the unknown ones for them.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

app.command("run", cls=run_command.PanelledCommand)(run_command.run)
app.command("train")(agent_commands.train_cmd)
app.command("evaluate")(agent_commands.evaluate_cmd)
app.command("sweep")(sweep_command.sweep_cmd)
app.command("serve", context_settings=_PASS_THROUGH)(serve_command.serve_cmd)
app.command("observe", context_settings=_PASS_THROUGH)(observe_command.observe_cmd)
app.command("calibrate", context_settings=_PASS_THROUGH)(calibrate_command.calibrate_cmd)
app.command("replay", context_settings=_PASS_THROUGH)(replay_command.replay_cmd)
app.add_typer(convert_command.convert_app, name="convert")
app.command("compose")(convert_command.compose_cmd)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, turning every user error into one line and exit code 2."""
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="blis")
    except BlisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except cx.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        sys.exit(2)
    except cx.UsageError as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except cx.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    # Without standalone mode, typer returns Ctrl-C as exit code 130 instead of raising.
    if isinstance(rc, int) and rc:
        if rc == 130:
            print("error: interrupted", file=sys.stderr)
        sys.exit(rc)


if __name__ == "__main__":
    main()
