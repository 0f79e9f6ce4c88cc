"""Bare repos in the data dir, each with Yurt's pre-receive shim from ``hooks/``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from controller import proc
from controller.names import check_app_name
from controller.settings import Settings

DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")


class Repos:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def path(self, app: str) -> Path:
        return self.settings.repos_dir / f"{check_app_name(app)}.git"

    def create(self, app: str) -> Path:
        path = self.path(app)
        if not path.exists():
            tmp = path.with_name(path.name + ".new")
            shutil.rmtree(tmp, ignore_errors=True)
            proc.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", tmp])
            tmp.rename(path)
        self.configure(app)
        return path

    def configure(self, app: str) -> None:
        """(Re)install the hook and the settings it reads; safe to repeat on every start."""
        path = self.path(app)
        git = ["git", "--git-dir", str(path), "config"]
        proc.run([*git, "yurt.app", app])
        proc.run([*git, "yurt.python", sys.executable])
        proc.run([*git, "yurt.datadir", str(self.settings.data_dir)])
        proc.run([*git, "http.receivepack", "true"])
        proc.run([*git, "receive.denyDeletes", "false"])
        proc.run([*git, "receive.denyNonFastForwards", "false"])
        hook = path / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        shutil.copyfile(self.settings.hooks_dir / "pre-receive", hook)
        hook.chmod(0o755)

    def destroy(self, app: str) -> None:
        shutil.rmtree(self.path(app), ignore_errors=True)

    def existing(self) -> list[str]:
        if not self.settings.repos_dir.exists():
            return []
        return sorted(p.name[: -len(".git")] for p in self.settings.repos_dir.glob("*.git"))
