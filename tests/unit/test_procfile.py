from __future__ import annotations

import pytest

from controller.builds.procfile import ProcfileError, parse_procfile


def test_parses_types_comments_and_blank_lines() -> None:
    text = "# comment\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n// also a comment\nworker:python w.py\nrelease: ./migrate\n"
    assert parse_procfile(text) == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python w.py",
        "release": "./migrate",
    }


def test_commands_keep_later_colons() -> None:
    assert parse_procfile("web: node -e 'a:b'\n") == {"web": "node -e 'a:b'"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: a\nweb: b\n", "declared twice"),
        ("<<<<<<< HEAD\nweb: a\n", "not 'type: command'"),
        ("we b: x\n", "not 'type: command'"),
        ("web:\n", "has no command"),
        ("w" * 64 + ": x\n", "invalid process type"),
        ("wéb: x\n", "invalid process type"),
    ],
)
def test_rejects_invalid_files_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ProcfileError, match=message) as err:
        parse_procfile(text)
    assert "line" in str(err.value).lower()
