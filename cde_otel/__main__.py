"""``python -m cde_otel`` and the ``cde-otel`` console script.

The command line is the ``cde-otel[cli]`` extra (typer, rich): the library and the start-up hook
never need it, so without it the script says what to install instead of showing an ImportError.
"""

from __future__ import annotations

import sys

_CLI_MODULES = ("typer", "rich", "click")


def main() -> None:
    try:
        from cde_otel.cli import main as cli_main
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _CLI_MODULES:
            raise
        sys.stderr.write(
            f"cde-otel: the command line needs the 'cli' extra ({missing} is not installed): "
            "pip install 'cde-otel[cli]'\n"
        )
        raise SystemExit(1) from None
    cli_main()


if __name__ == "__main__":
    main()
