"""The package's optional parts (pyproject's extras) and the one-line error when one is missing.

The core install (`pip install py-rt-appliance`) compiles, validates, plans and runs the event
bus; research (`appliance backtest`, `appliance optimize`, reports) and the Ansible roll-out
(`appliance apply`) need the `research` and `deploy` extras. A command calls `require` before
its lazy imports, so a lean install says what to install instead of printing a traceback.
"""

from __future__ import annotations

import importlib.util

import typer

DISTRIBUTION = "py-rt-appliance"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent is missing
        return False


def require(extra: str, *modules: str) -> None:
    """At a command's entry: unless every module in `modules` can be imported, print one line
    naming `extra` and how to install it on stderr, and exit 1."""
    absent = [name for name in modules if not _importable(name)]
    if absent:
        typer.echo(
            f"error: this command needs the '{extra}' extra ({', '.join(absent)} not "
            f"installed): pip install '{DISTRIBUTION}[{extra}]'",
            err=True,
        )
        raise typer.Exit(1)
