"""How the CLI prints: data on stdout (tables, key/value blocks, JSON), notes on stderr.

Colour only when stdout is a terminal and ``NO_COLOR`` is unset.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def color_enabled() -> bool:
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def bold(text: str) -> str:
    return click.style(text, bold=True) if color_enabled() else text


def shown(value: object, empty: str = "-") -> str:
    """A field as table text: ``-`` for null or empty."""
    return empty if value is None or value == "" else str(value)


def json_option(func: F) -> F:
    """The ``--json`` flag every read command has; it arrives as ``as_json``."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table."
    )(func)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def format_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the header alone when there are no rows."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    click.echo(bold(format_row(headers, widths)))
    for row in rows:
        click.echo(format_row(row, widths))


def print_info(title: str, fields: Sequence[tuple[str, str]]) -> None:
    """Heroku's ``=== title`` block of aligned ``Label:  value`` lines."""
    click.echo(bold(f"=== {title}"))
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        click.echo(f"{(label + ':').ljust(width)}  {value}")


def note(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def action(message: str) -> Iterator[None]:
    """``message... done`` on stderr around a step (`` !`` before the error if it fails)."""
    click.echo(f"{message}...", err=True, nl=False)
    try:
        yield
    except BaseException:
        click.echo(" !", err=True)
        raise
    click.echo(" done", err=True)
