"""One way for every CLI command to fail: a formatted message on stderr and a non-zero exit.

    from cde_otel.cli._error_handling import handle_errors

    @app.command()
    @handle_errors()
    def restore(path: str, backup: str) -> None: ...

    # or around a block:
    with handle_errors():
        repo.restore_backup(path, backup)

A ``CDEError`` (or any other exception, shown as E902) becomes :meth:`ErrorFormatter.format` on stderr -
ASCII when ``NO_COLOR`` is set or stderr cannot show emoji - and exit code 1. The traceback never reaches
the terminal: it goes to the stdlib logger ``cde_otel.cli`` (debug for coded errors, error for
unexpected ones), which only prints where logging is configured. Typer's own exits, aborts and usage
errors pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from cde_otel._exceptions import CDEError
from cde_otel.cli._console import err_console
from cde_otel.errors.formatter import ErrorFormatter, prefers_ascii

#: Exit status of a command that failed with a (formatted) error; 2 stays typer's usage-error status.
ERROR_EXIT_CODE = 1

logger = logging.getLogger("cde_otel.cli")
# Without a handler, Python's last-resort handler would print error records (with their traceback) to stderr.
logger.addHandler(logging.NullHandler())


def report_error(error: BaseException) -> None:
    """Logs ``error`` with its traceback and shows its formatted message on stderr."""
    if isinstance(error, CDEError):
        logger.debug("command failed with %s", error.code, exc_info=error)
    else:
        logger.error("command failed with an unexpected %s", type(error).__name__, exc_info=error)
    text = ErrorFormatter.format(error, ascii=prefers_ascii(err_console.file))
    head, _, body = text.partition("\n")
    err_console.print(head, style="bold red", markup=False, emoji=False, highlight=False, soft_wrap=True)
    err_console.print(body, markup=False, emoji=False, highlight=False, soft_wrap=True)


@contextmanager
def handle_errors(exit_code: int = ERROR_EXIT_CODE) -> Iterator[None]:
    """Context manager and decorator: failures become a formatted message and ``typer.Exit(exit_code)``."""
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # exits, aborts and usage errors keep typer's own handling
    except Exception as error:
        report_error(error)
        raise typer.Exit(exit_code) from None
