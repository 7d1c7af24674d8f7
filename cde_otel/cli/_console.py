"""The CLI's own consoles: everything the CLI shows goes through these (never ``print``).

rich honours ``NO_COLOR`` and falls back to plain output when stdout is not a terminal.
"""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
