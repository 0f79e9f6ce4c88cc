"""Per-app system users: naming, creation, removal and dropping privileges for builds."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator

import pytest

from controller import proc
from controller.runtime.local import users

needs_root = pytest.mark.skipif(
    not users.running_as_root(), reason="creating users and switching to them needs root"
)


def test_user_names_fit_in_32_characters_and_stay_distinct() -> None:
    assert users.user_for_app("hello") == "yurt-hello"
    long_a = "a" * 26 + "-one"
    long_b = "a" * 26 + "-two"
    name_a, name_b = users.user_for_app(long_a), users.user_for_app(long_b)
    assert len(name_a) <= 32 and len(name_b) <= 32
    assert name_a.startswith("yurt-aaaa") and name_a != name_b
    assert users.user_for_app(long_a) == name_a  # stable
    assert users.user_for_app("x" * 27) == "yurt-" + "x" * 27  # exactly 32 stays readable


def test_not_root_apps_share_our_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "running_as_root", lambda: False)
    assert users.ensure_user("hello") == (os.getuid(), os.getgid())
    users.remove_user("hello")  # nothing to do
    users.drop_privileges(os.getuid(), os.getgid())()  # a no-op
    with pytest.raises(ValueError):
        users.drop_privileges(os.getuid() + 1, os.getgid())


@pytest.fixture
def app() -> Iterator[str]:
    name = "users-test-app"
    try:
        yield name
    finally:
        users.remove_user(name)


@needs_root
def test_ensure_user_creates_a_locked_system_user_once(app: str) -> None:
    uid, gid = users.ensure_user(app)
    assert users.ensure_user(app) == (uid, gid)
    entry = pwd.getpwnam(users.user_for_app(app))
    assert (entry.pw_uid, entry.pw_gid) == (uid, gid)
    assert entry.pw_dir == "/nonexistent" and entry.pw_shell == "/usr/sbin/nologin"
    assert 0 < uid < 1000  # a system user
    users.remove_user(app)
    with pytest.raises(KeyError):
        pwd.getpwnam(users.user_for_app(app))
    users.remove_user(app)  # already gone: no error


@needs_root
def test_drop_privileges_runs_a_build_as_the_app_user(app: str, tmp_path: object) -> None:
    uid, gid = users.ensure_user(app)
    out: list[bytes] = []
    argv = ["sh", "-c", "id -u; id -g; id -G; cat /etc/shadow"]
    status = proc.stream(argv, out.append, preexec_fn=users.drop_privileges(uid, gid))
    text = b"".join(out).decode()
    assert status != 0  # cat /etc/shadow fails
    assert text.splitlines()[:3] == [str(uid), str(gid), str(gid)]
    assert "Permission denied" in text
