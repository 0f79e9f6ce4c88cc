"""The CLI's one error type and its one printer: ``Error: <message>`` on stderr, exit status 1."""

from __future__ import annotations

from typing import IO, Any

import click


class CliError(click.ClickException):
    """An error meant for the user; click shows it through :func:`print_error` and exits 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        print_error(self.message)


def print_error(message: str) -> None:
    """Print ``Error: message`` on stderr; every CLI failure goes through here."""
    click.echo(f"Error: {message}", err=True)
