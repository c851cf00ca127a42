"""The ``lightson`` command group and what every subcommand shares: errors become a
one-line message on stderr and exit status 2 (never a traceback)."""

from __future__ import annotations

import errno
import logging
import math
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
import sqlalchemy.exc

from lightson.config import EXAMPLE_PROGRAM
from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError, LightsOnError

F = TypeVar("F", bound=Callable[..., Any])
DEMO_DAY = "2026-07-15T00:00"
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def finite(_: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number", param=param)
    return value


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}".replace("\n", "\nerror: "), err=True)
    sys.exit(2)


def friendly_errors(command: F) -> F:
    """Ordinary errors end the command with one line per problem on stderr and exit status 2,
    never a traceback: the program's own errors, a port already in use, a ``--db`` that is no
    database URL or that refuses (read-only, full, gone)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LightsOnError as error:
            _fail(str(error))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            _fail(
                f"{error.strerror or error}: another server is running there? choose another port"
            )
        except sqlalchemy.exc.ArgumentError as error:  # includes an unknown dialect
            _fail(f"--db: not a database URL ({error}); e.g. sqlite:///lightson.db")
        except sqlalchemy.exc.OperationalError as error:  # read-only, disk full, server gone
            reason = str(error.orig or error).splitlines()[0]
            _fail(f"the database refused: {reason} (--db)")

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="lightson")
def main() -> None:
    """Lights On: plan, run and study vehicle-to-everything (V2X) programs.

    PROGRAM arguments take a program file (YAML, see docs/program-file.md) or a bundled
    program: 'example', 'beverly-2021' or 'ma-2026'.
    """


def program_argument(
    parameter: str = "program_file", default: str | None = EXAMPLE_PROGRAM
) -> Callable[[F], F]:
    """The program a command works on, the same way on every command: a positional
    ``PROGRAM`` (a file, or a bundled name). ``--program`` still works but warns (it was
    the option's name before #17). Left out, it is ``default``, said on stderr, never
    silently (a study of the example looks like a study of one's own program)."""

    def decorate(command: F) -> F:
        @wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given, alias = kwargs.pop(parameter), kwargs.pop("program_alias")
            if alias is not None:
                if given is not None:
                    raise click.UsageError("give PROGRAM once, not also as --program")
                click.echo(
                    "warning: --program is deprecated: give the program first, e.g. "
                    f"'lightson {click.get_current_context().command_path.split(' ', 1)[1]} "
                    f"{alias} ...'",
                    err=True,
                )
                given = alias
            if given is None and default is not None:
                click.echo(f"note: no PROGRAM given: using the bundled '{default}'", err=True)
            return command(*args, **{parameter: default if given is None else given}, **kwargs)

        click.option("--program", "program_alias", default=None, hidden=True)(wrapper)
        click.argument(parameter, metavar="[PROGRAM]", required=False)(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def parse_start(text: str, program: Program, option: str = "--start") -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError.at(option, "must be a date and time like 2026-07-15T00:00") from None
    if not 1901 <= value.year <= 2199:
        raise ConfigError.at(option, "must be a year between 1901 and 2199")
    return value if value.tzinfo else value.replace(tzinfo=program.timezone)


def log_frames(*, enabled: bool) -> None:
    """The ``ocpp`` package logs every frame at INFO: kept at INFO only when asked
    (``--log-frames``), else only its warnings pass (a fleet sends millions of frames)."""
    logging.getLogger("ocpp").setLevel(logging.INFO if enabled else logging.WARNING)


offline_close_option = click.option(
    "--offline-close-after",
    default=900,
    show_default=True,
    type=click.IntRange(60, 86400),
    help="Seconds a station may stay disconnected before its open transactions are closed "
    "(its vehicle then no longer counts as plugged; not while its site is islanded); "
    "docs/csms.md.",
)


def shared_clock_options(command: F) -> F:
    """The hidden ``--start``, ``--speed`` and ``--clock-origin`` of the distributed roles:
    drills, tests and ``demo --distributed`` give every process one accelerated clock
    (``csms.clock.AcceleratedClock``: the same start, speed and monotonic origin)."""
    command = click.option("--clock-origin", type=float, default=None, hidden=True)(command)
    command = click.option("--speed", type=click.FloatRange(min=1.0), default=1.0, hidden=True)(
        command
    )
    return click.option(
        "--start",
        type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
        default=None,
        hidden=True,
        help="Drills, tests and the distributed demo: the clock starts here (with an offset).",
    )(command)
