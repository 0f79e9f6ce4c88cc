"""API tokens: the admin token made on first start, plus the hook's internal token.

Tokens are random, shown once (written to a 0600 file), and stored only as sha256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from ulid import ULID

from controller.db.models import ApiToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "yurt_" + secrets.token_urlsafe(32)


def write_secret_file(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)


class TokenService:
    def __init__(self, sessions: sessionmaker[Any], hook_token: str) -> None:
        self.sessions = sessions
        self._hook_hash = hash_token(hook_token)

    def ensure_admin_token(self, path: Path) -> str | None:
        """Create the admin token on first start; return it if it was created now."""
        if path.exists():
            return None
        token = new_token()
        with self.sessions.begin() as s:
            s.add(ApiToken(id=str(ULID()), name="admin", token_hash=hash_token(token)))
        write_secret_file(path, token)
        return token

    def is_valid(self, token: str) -> bool:
        if not token:
            return False
        digest = hash_token(token)
        with self.sessions() as s:
            return s.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)) is not None

    def is_hook(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(hash_token(token), self._hook_hash)


def load_or_create_hook_token(path: Path) -> str:
    """The hook token authenticates our own pre-receive hooks to the controller."""
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    write_secret_file(path, token)
    return token
