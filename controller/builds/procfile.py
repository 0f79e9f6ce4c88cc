"""Procfile parsing (Dokku's procfile-util rules: strict, duplicates rejected)."""

from __future__ import annotations

import re

from controller.names import PROCESS_TYPE_RE

_LINE = re.compile(r"^([^:\s]+):\s*(.*)$")


class ProcfileError(ValueError):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    """Return {process type: command}; raise ProcfileError naming the bad line."""
    types: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ProcfileError(f"Procfile line {number} is not 'type: command': {line[:80]!r}")
        name, command = match.group(1), match.group(2).strip()
        if not PROCESS_TYPE_RE.match(name):
            raise ProcfileError(
                f"Procfile line {number}: invalid process type {name[:64]!r} "
                "(use 1 to 63 letters, digits, '_' or '-')"
            )
        if name in types:
            raise ProcfileError(f"Procfile line {number}: process type {name!r} is declared twice")
        if not command:
            raise ProcfileError(f"Procfile line {number}: process type {name!r} has no command")
        types[name] = command
    return types
