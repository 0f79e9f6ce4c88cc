"""app.json, the parts Yurt reads: ``healthchecks.web`` (Dokku's format).

Both runtimes check web the same way: the local runtime from the release dir, the nomad runtime
from the pushed commit (its Consul check)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class WebCheck:
    """The first ``healthchecks.web`` entry with a path."""

    path: str
    timeout: float = 5.0
    attempts: int = 5
    wait: float = 1.0


def web_check(text: str | bytes | None) -> WebCheck | None:
    """The web check app.json declares, or None (no app.json, no check, or not readable:
    a TCP check on PORT is used then)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        checks = data.get("healthchecks", {}).get("web", [])
        for check in checks:
            if isinstance(check, dict) and isinstance(check.get("path"), str):
                path = check["path"]
                return WebCheck(
                    path=path if path.startswith("/") else "/" + path,
                    timeout=float(check.get("timeout", 5)),
                    attempts=int(check.get("attempts", 5)),
                    wait=float(check.get("wait", 1)),
                )
    except (ValueError, AttributeError, TypeError):
        pass
    return None
