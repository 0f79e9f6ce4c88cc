"""The live tier: the flows of tests/nomad/flows.py against a real Nomad cluster, and the demo
cluster's smoke test. ``make test`` leaves these out (``-m "not live"``); run them with
``pytest -m live`` (or ``make test-live``) and:

* ``NOMAD_ADDR`` (+ ``NOMAD_TOKEN``, ``NOMAD_NAMESPACE`` default ``yurt``, ``CONSUL_HTTP_ADDR``):
  the cluster; the namespaces ``yurt`` and ``yurt-release`` must exist.
* ``YURT_LIVE_IMAGE``: an image pinned by digest (``REPO@sha256:...``) whose web process
  listens on ``$PORT`` (e.g. an image built by a push to the demo cluster); optionally
  ``YURT_LIVE_COMMAND`` (default: the image's CMD).
* for the smoke test, the demo cluster from ``vagrant up`` (``vagrant/smoke.sh``).

Without them each test is skipped and says which variable is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.runtime.nomad.client import NomadClient, NomadSettings
from controller.runtime.nomad.runtime import NomadRuntime, NomadRuntimeSettings, ReleaseImage
from tests.nomad import flows

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[2]


def _need(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live tier: set {', '.join(missing)} to run against a real cluster")


@dataclass
class LiveTarget:
    client: NomadClient
    image: str
    command: str | None
    timeout: float = 600.0

    def runtime(self, app: str) -> NomadRuntime:
        settings = NomadRuntimeSettings(
            namespace=self.client.settings.namespace,
            region=self.client.settings.region or "global",
            base_domain=os.environ.get("YURT_BASE_DOMAIN") or None,
        )
        return NomadRuntime(
            self.client,
            settings,
            image_for=lambda spec: ReleaseImage(spec.image or "", spec.build_id or ""),
        )

    def will_fail(self, app: str, version: int) -> None:
        """Nothing to arrange: the failing command really exits 3."""


@pytest.fixture
def target() -> LiveTarget:
    _need("NOMAD_ADDR", "YURT_LIVE_IMAGE")
    client = NomadClient(NomadSettings.from_env())
    return LiveTarget(client, os.environ["YURT_LIVE_IMAGE"], os.environ.get("YURT_LIVE_COMMAND"))


def test_live_deploy_scale_restart_destroy(target: LiveTarget) -> None:
    flows.flow_deploy_scale_restart_destroy(target)


def test_live_failed_release_reverts_to_the_last_good_one(target: LiveTarget) -> None:
    flows.flow_failed_release_reverts_to_the_last_good_one(target)


def test_live_demo_cluster_smoke() -> None:
    """vagrant/smoke.sh: login, push, config, scale, rollback, logs on the demo cluster."""
    _need("YURT_LIVE_SMOKE")
    if shutil.which("vagrant") is None:
        pytest.skip("live tier: vagrant is not installed")
    done = subprocess.run([str(ROOT / "vagrant" / "smoke.sh")], cwd=ROOT, timeout=1800)
    assert done.returncode == 0
