"""``FakeCluster``: a strict fake Nomad agent and Consul agent on loopback ports, plus the test
control API that decides what allocations do.

Two real HTTP servers (``nomad_addr``, ``consul_addr``) so python-nomad, py-consul and
requests are exercised for real. Simulated time advances by ``sim_step`` seconds per step;
steps run from a background ticker every ``tick`` real seconds, or only when the test calls
``advance``/``settle``/``run_until`` (``tick=None``). The module docstrings of ``nomad.state``,
``nomad.api``, ``nomad.jobspec`` and ``consul.api`` say what is modelled and where from.

Controls (all thread-safe):
* ``set_outcome(job, group, kind, version=..., task_events=[...])`` - kind is ``healthy``
  (default), ``unhealthy`` (runs, checks critical, unhealthy at healthy_deadline), ``fail_start``
  (driver failure, restarts exhausted, alloc failed), ``pending`` (never starts, e.g. a
  template waiting for Vault; unhealthy at healthy_deadline) or ``placement_failure`` (no
  node fits: eval FailedTGAllocs plus a blocked eval). ``job`` may be a parameterized parent.
* ``create_namespace(name)`` - namespaces other than ``default`` and those given as
  ``namespaces`` (default ``("yurt",)``, as the demo cluster's provisioning creates it) do not
  exist: a job registered in one is refused as real Nomad does.
* ``set_batch_result(job_prefix, exit_code, stdout, stderr, hold=False)`` - batch allocations
  of jobs whose ID starts with the prefix log this text and exit with this code; ``hold``
  keeps them running until ``release(job_prefix)`` (or ``finish(alloc_id, exit_code)`` for
  one of them); ``append_log`` adds output live.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .consul.api import ConsulAPI
from .consul.state import ConsulState
from .httpbase import FakeHTTPServer
from .nomad.api import NomadAPI
from .nomad.model import Outcome
from .nomad.state import NomadState, OutcomeRule

OUTCOMES = ("healthy", "unhealthy", "fail_start", "pending", "placement_failure")


class FakeCluster:
    def __init__(
        self,
        *,
        nomad_token: str | None = None,
        consul_token: str | None = None,
        tick: float | None = 0.02,
        sim_step: float = 5.0,
        tracked_versions: int = 6,
        log_heartbeat: float = 1.0,
        namespaces: tuple[str, ...] = ("yurt",),
    ) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.stopped = threading.Event()
        self.nomad_token, self.consul_token = nomad_token, consul_token
        self.consul = ConsulState(self.cond)
        self.nomad = NomadState(
            self.cond, self.consul, sim_step=sim_step, tracked_versions=tracked_versions
        )
        self.nomad.namespaces.update(namespaces)
        self.nomad_server = FakeHTTPServer(
            NomadAPI(self.nomad, self.stopped, nomad_token, log_heartbeat), self.stopped
        )
        self.consul_server = FakeHTTPServer(
            ConsulAPI(self.consul, self.stopped, consul_token), self.stopped
        )
        self.tick = tick
        self.paused = False
        self._ticker: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeCluster:
        self.nomad_server.start()
        self.consul_server.start()
        if self.tick is not None:
            self._ticker = threading.Thread(
                target=self._run_ticker, name="fake-nomad-ticker", daemon=True
            )
            self._ticker.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        with self.cond:
            self.cond.notify_all()
        self.nomad_server.stop()
        self.consul_server.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_ticker(self) -> None:
        assert self.tick is not None
        while not self.stopped.wait(self.tick):
            with self.cond:
                if not self.paused:
                    self.nomad.advance()

    # -- addresses and clients -----------------------------------------------------------------------
    @property
    def nomad_addr(self) -> str:
        return self.nomad_server.address

    @property
    def consul_addr(self) -> str:
        return self.consul_server.address

    @property
    def consul_port(self) -> int:
        return self.consul_server.port

    def nomad_client(self, **kwargs: Any) -> Any:
        """A python-nomad client for this fake (the token is passed when ACLs are on)."""
        import nomad

        kwargs.setdefault("token", self.nomad_token)
        return nomad.Nomad(address=self.nomad_addr, **kwargs)

    def consul_client(self, **kwargs: Any) -> Any:
        """A py-consul client. Note: py-consul prefers $CONSUL_HTTP_TOKEN over ``token=``."""
        import consul

        kwargs.setdefault("token", self.consul_token)
        return consul.Consul(host="127.0.0.1", port=self.consul_port, **kwargs)

    # -- test controls ----------------------------------------------------------------------------
    def set_outcome(
        self,
        job: str,
        group: str | None = None,
        kind: str = "healthy",
        *,
        version: int | None = None,
        task_events: list[dict[str, Any]] | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        """Decide what allocations of ``job`` (and ``group``, and job ``version``) placed from now on do."""
        if kind not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        outcome = Outcome(
            kind=kind, task_events=list(task_events or []), stdout=stdout, stderr=stderr
        )
        with self.cond:
            self.nomad.add_rule(OutcomeRule(job, group, version, outcome))

    def set_batch_result(
        self,
        job_prefix: str,
        exit_code: int = 0,
        stdout: str = "",
        stderr: str = "",
        *,
        hold: bool = False,
        group: str | None = None,
    ) -> None:
        """Batch allocations of jobs whose ID starts with ``job_prefix`` (and of ``group``, when
        given: a release job shares its ID with the app's service job) print this and exit with
        ``exit_code``."""
        outcome = Outcome(
            kind="healthy", exit_code=exit_code, stdout=stdout, stderr=stderr, hold=hold
        )
        with self.cond:
            self.nomad.add_rule(OutcomeRule(job_prefix, group, None, outcome, prefix=True))

    def release(self, job_prefix: str) -> None:
        """Let held batch allocations (``hold=True``) finish on the next step."""
        with self.cond:
            for rule in self.nomad.rules:
                if rule.prefix and rule.job == job_prefix:
                    rule.outcome.hold = False
            for a in self.nomad.allocs.values():
                if a.job_id.startswith(job_prefix):
                    a.outcome.hold = False
            self.cond.notify_all()

    def create_namespace(self, name: str) -> None:
        """Create a Nomad namespace (``nomad namespace apply``); jobs in others are refused."""
        with self.cond:
            self.nomad.namespaces.add(name)

    def finish(self, alloc_id: str, exit_code: int) -> None:
        """End one held batch allocation with ``exit_code``: for a test that does the task's
        work itself (tests/integration/cluster_builds.py runs the real builder)."""
        with self.cond:
            a = self.nomad.allocs[alloc_id]
            a.outcome = dataclasses.replace(a.outcome, exit_code=exit_code, hold=False)
            self.cond.notify_all()

    def append_log(self, alloc_id: str, task: str, text: str, stream: str = "stdout") -> None:
        with self.cond:
            self.nomad.allocs[alloc_id].logs.setdefault((task, stream), bytearray()).extend(
                text.encode()
            )
            self.cond.notify_all()

    # -- time -------------------------------------------------------------------------------------------
    def advance(self, steps: int = 1) -> None:
        with self.cond:
            for _ in range(steps):
                self.nomad.advance()

    def advance_time(self, seconds: float) -> None:
        self.advance(max(1, math.ceil(seconds / self.nomad.sim_step)))

    def run_until(self, predicate: Callable[[], bool], max_steps: int = 1000) -> int:
        """Advance until ``predicate()`` (called with the lock held) is true; return the steps taken."""
        with self.cond:
            for step in range(max_steps + 1):
                if predicate():
                    return step
                self.nomad.advance()
        raise AssertionError(f"condition not reached after {max_steps} simulated steps")

    def settle(self, quiet_seconds: float = 660.0, max_steps: int = 5000) -> None:
        """Advance until nothing has changed for ``quiet_seconds`` of simulated time."""
        quiet_needed = max(1, math.ceil(quiet_seconds / self.nomad.sim_step))
        with self.cond:
            quiet, last = 0, (self.nomad.index, self.consul.index)
            for _ in range(max_steps):
                self.nomad.advance()
                now = (self.nomad.index, self.consul.index)
                quiet = quiet + 1 if now == last else 0
                last = now
                if quiet >= quiet_needed:
                    return
        raise AssertionError("the fake cluster did not settle")

    # -- inspection ---------------------------------------------------------------------------------
    def job(self, job_id: str, namespace: str = "default") -> dict[str, Any]:
        with self.cond:
            return self.nomad.entry(namespace, job_id).job

    def allocations(self, job_id: str, namespace: str = "default") -> list[dict[str, Any]]:
        with self.cond:
            entry = self.nomad.entry(namespace, job_id)
            return [
                a.stub() for a in sorted(self.nomad.job_allocs(entry), key=lambda a: a.create_index)
            ]

    def deployments(self, job_id: str, namespace: str = "default") -> list[dict[str, Any]]:
        with self.cond:
            return self.nomad.job_deployments(self.nomad.entry(namespace, job_id))

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        with self.cond:
            return [e.job for e in self.nomad.jobs.values() if e.job["ParentID"] == parent_id]

    def catalog(self, service: str) -> list[dict[str, Any]]:
        with self.cond:
            return self.consul.catalog_service(service, [])
