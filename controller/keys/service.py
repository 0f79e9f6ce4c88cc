"""SSH key service: validates keys with ssh-keygen and rewrites authorized_keys on change."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from ulid import ULID

from controller import proc
from controller.db.models import SshKey
from controller.errors import Conflict, InvalidParams, NotFound

KEY_LINE = re.compile(
    r"^(?P<type>(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+(?P<blob>[A-Za-z0-9+/]+={0,3})(\s+(?P<comment>.*))?$"
)
MAX_KEY_LENGTH = 16 * 1024


@dataclass(frozen=True)
class KeyView:
    id: str
    name: str
    fingerprint: str
    public_key: str
    created_at: datetime


class KeyService:
    def __init__(self, sessions: sessionmaker[Any]) -> None:
        self.sessions = sessions
        # Called with the full key list whenever it changes (the SSH server rewrites
        # authorized_keys from it).
        self.on_change: Callable[[list[KeyView]], None] | None = None

    def list(self) -> list[KeyView]:
        with self.sessions() as s:
            rows = s.scalars(select(SshKey).order_by(SshKey.created_at)).all()
            return [_view(k) for k in rows]

    def add(self, public_key: str, name: str | None = None) -> KeyView:
        line = " ".join(public_key.strip().split())
        if len(line) > MAX_KEY_LENGTH or "\n" in public_key.strip():
            raise InvalidParams("Give exactly one public key (one line, as in id_ed25519.pub).")
        match = KEY_LINE.match(line)
        if not match:
            raise InvalidParams(
                "That is not an SSH public key. Give the contents of a .pub file, "
                "e.g. 'ssh-ed25519 AAAA... you@host'."
            )
        fingerprint = fingerprint_of(f"{match['type']} {match['blob']}")
        clean = f"{match['type']} {match['blob']}"
        label = (name or match["comment"] or fingerprint).strip()[:255]
        key = SshKey(id=str(ULID()), name=label, fingerprint=fingerprint, public_key=clean)
        try:
            with self.sessions.begin() as s:
                s.add(key)
        except IntegrityError as exc:
            raise Conflict(f"The key {fingerprint} has already been added.") from exc
        self._changed()
        return _view(key)

    def remove(self, ident: str) -> KeyView:
        with self.sessions.begin() as s:
            key = s.scalar(
                select(SshKey).where(
                    or_(SshKey.id == ident, SshKey.fingerprint == ident, SshKey.name == ident)
                )
            )
            if key is None:
                raise NotFound(
                    f"No SSH key matches {ident[:100]!r} (give its id, fingerprint or name)."
                )
            view = _view(key)
            s.execute(delete(SshKey).where(SshKey.id == key.id))
        self._changed()
        return view

    def exists(self, key_id: str) -> bool:
        with self.sessions() as s:
            return s.get(SshKey, key_id) is not None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.list())


def fingerprint_of(key: str) -> str:
    """SHA256 fingerprint as ssh-keygen prints it; InvalidParams if ssh-keygen rejects the key."""
    with tempfile.NamedTemporaryFile("w", suffix=".pub") as fh:
        fh.write(key + "\n")
        fh.flush()
        res = proc.run(["ssh-keygen", "-l", "-E", "sha256", "-f", fh.name], check=False)
    if res.returncode != 0:
        raise InvalidParams("That public key is not valid (ssh-keygen could not read it).")
    return res.stdout.split()[1]


def _view(key: SshKey) -> KeyView:
    return KeyView(key.id, key.name, key.fingerprint, key.public_key, key.created_at)


def authorized_keys_text(keys: list[KeyView], command: Callable[[KeyView], str]) -> str:
    """authorized_keys with one forced command per key (Dokku/Piku style)."""
    lines = [f'command="{command(k)}",restrict {k.public_key} {k.id}' for k in keys]
    return "".join(line + "\n" for line in lines)


def write_authorized_keys(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
