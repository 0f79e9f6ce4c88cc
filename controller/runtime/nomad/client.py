"""The typed Nomad client the nomad runtime's control loop uses.

One ``NomadClient`` per controller, configured by a frozen ``NomadSettings`` (``from_env`` reads
Nomad's and Consul's usual variables). It is built on python-nomad where that library does the
right thing (parse, register, job, versions, allocations, deployment, revert, stop, promote) and
on plain ``requests`` where it does not (reference §1.14 and the notes below); both share one
``requests.Session``, the same timeouts, the ``X-Nomad-Token`` header and the namespace/region
query parameters.

Where python-nomad 2.1.0 is not used, and why:

* dispatch: ``dispatch_job`` puts ``idempotency_token`` in the JSON body; Nomad reads it only
  from the query string (§1.6), so de-duplication would silently not happen.
* blocking queries (``watch_*``): python-nomad cannot send ``index``/``wait`` and its timeout
  is shorter than a blocking query (§1.0).
* logs: ``stream_logs`` reads the whole body and never returns with ``follow=True`` (§1.9).
* scale, evaluation, version tags: not in python-nomad (tags: ``Version`` is always sent,
  since Nomad tags version 0 without it, pitfall 2).

Errors: every failure becomes a ``NomadError`` (see ``nomad_error`` for the status mapping)
whose message names the call and carries Nomad's own text, never the token.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import nomad.api
import nomad.api.exceptions
import requests

from controller.errors import YurtError
from controller.runtime.nomad.logframes import FrameDecoder, FrameError

T = TypeVar("T")

TERMINAL_DEPLOYMENT = frozenset({"successful", "failed", "cancelled"})  # §1.7
TERMINAL_ALLOC = frozenset({"complete", "failed", "lost"})  # §1.8
LOG_STREAMS = ("stdout", "stderr")
_READ_SIZE = 16 * 1024  # log frames carry up to 64 KiB of data, so they span several reads
_MIN_POLL_GAP = 0.05  # never more than 20 blocking queries a second on one watch
_MAX_MESSAGE = 2000
_ID_RE = re.compile(r"[A-Za-z0-9._@:/=+-]{1,256}\Z")
_TRUE = frozenset({"1", "t", "true", "yes", "on"})


# -- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NomadSettings:
    """Where the cluster's Nomad and Consul are and how to talk to them.

    Tokens are left out of ``repr`` so a logged settings object never shows them.
    ``timeout`` bounds every ordinary request (python-nomad's default of 5 s is too short for
    a register under load); ``max_wait`` is the longest single blocking query (Nomad caps it at
    10 min; shorter queries notice a dead connection sooner).
    """

    addr: str = "http://127.0.0.1:4646"
    token: str | None = field(default=None, repr=False)
    # Yurt's app namespace (the runtime's and the job specs' default; NOMAD_NAMESPACE overrides)
    namespace: str = "yurt"
    region: str | None = None
    ca_cert: str | None = None
    skip_verify: bool = False
    client_cert: str | None = None
    client_key: str | None = None
    consul_addr: str = "http://127.0.0.1:8500"
    consul_token: str | None = field(default=None, repr=False)
    consul_ca_cert: str | None = None
    timeout: float = 10.0
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "addr", _base_url(self.addr, "NOMAD_ADDR", require_scheme=True))
        object.__setattr__(
            self, "consul_addr", _base_url(self.consul_addr, "CONSUL_HTTP_ADDR", False)
        )
        if not self.namespace:
            raise ValueError("the Nomad namespace must not be empty")
        if self.timeout <= 0 or self.max_wait <= 0:
            raise ValueError("timeout and max_wait must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NomadSettings:
        """Read NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT,
        NOMAD_SKIP_VERIFY, NOMAD_CLIENT_CERT/KEY, CONSUL_HTTP_ADDR (CONSUL_HTTP_SSL),
        CONSUL_HTTP_TOKEN and CONSUL_CACERT, with the CLIs' defaults."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(name, "").strip() or None

        consul_addr = get("CONSUL_HTTP_ADDR") or "127.0.0.1:8500"
        if "://" not in consul_addr:
            ssl = (get("CONSUL_HTTP_SSL") or "").lower() in _TRUE
            consul_addr = ("https://" if ssl else "http://") + consul_addr
        return cls(
            addr=get("NOMAD_ADDR") or cls.addr,
            token=get("NOMAD_TOKEN"),
            namespace=get("NOMAD_NAMESPACE") or cls.namespace,
            region=get("NOMAD_REGION"),
            ca_cert=get("NOMAD_CACERT"),
            skip_verify=(get("NOMAD_SKIP_VERIFY") or "").lower() in _TRUE,
            client_cert=get("NOMAD_CLIENT_CERT"),
            client_key=get("NOMAD_CLIENT_KEY"),
            consul_addr=consul_addr,
            consul_token=get("CONSUL_HTTP_TOKEN"),
            consul_ca_cert=get("CONSUL_CACERT"),
        )

    @property
    def tls_verify(self) -> bool | str:
        """requests' ``verify``: off, the CA file, or the system CAs (python-nomad's default
        is off, so it is always passed explicitly)."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    @property
    def tls_client_cert(self) -> tuple[str, str] | None:
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return None


def _base_url(value: str, name: str, require_scheme: bool) -> str:
    url = value.strip().rstrip("/")
    if "://" not in url and not require_scheme:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise ValueError(f"{name} must look like http(s)://host:port, got {value[:200]!r}")
    return url


# -- errors ------------------------------------------------------------------------------------------


class NomadError(YurtError):
    """A Nomad call failed for a reason Yurt's user cannot fix: Nomad unreachable or timing
    out, a 5xx, or Nomad refusing Yurt's own token (401/403 is a server misconfiguration, not
    the user's request). The API answers 502.

    ``nomad_status`` is Nomad's HTTP status (None when there was no answer), ``call`` names the
    call, ``nomad_message`` is Nomad's plain-text error.
    """

    status = 502
    id = "nomad_error"

    def __init__(self, nomad_status: int | None, message: str, *, call: str = "") -> None:
        self.nomad_status = nomad_status
        self.nomad_message = message
        self.call = call
        where = f"Nomad {call} failed" if call else "Nomad call failed"
        super().__init__(
            f"{where}: {nomad_status} {message}" if nomad_status else f"{where}: {message}"
        )


class NomadRejected(NomadError):
    """Nomad refused the request itself (a 4xx, or one of the 500s that are really validation
    errors, pitfall 14): the job spec, dispatch meta or arguments are wrong. Answered as 422
    with Nomad's message, which tells the user what to change."""

    status = 422
    id = "nomad_rejected"


class NomadConflict(NomadError):
    """A check-and-set lost (EnforceIndex, EnforcePriorVersion), a deployment is in progress
    (pitfall 6) or already over: retry after re-reading, or wait. Answered as 409."""

    status = 409
    id = "nomad_conflict"


class NomadTimeout(NomadError):
    """A watch reached its deadline; ``last`` is the last state seen (for the explanation)."""

    status = 504
    id = "nomad_timeout"

    def __init__(self, message: str, *, call: str = "", last: Any = None) -> None:
        super().__init__(None, message, call=call)
        self.last = last


# Nomad answers these with 500 although they are about the request (§1.0, pitfall 14).
_CONFLICT_TEXT = (
    "Enforcing job modify index",  # §1.2 EnforceIndex
    "Current job has version",  # §1.4 EnforcePriorVersion
    "job scaling blocked due to active deployment",  # §1.5 (a 400)
    "terminal deployment",  # promote/fail of a finished deployment
    "healthy allocations",  # promote before the canaries are healthy
)
_REJECTED_500_TEXT = (
    "error occurred:",  # go-multierror: job validation failures
    "errors occurred:",
    "Dispatch ",  # §1.6 meta validation
    "Payload ",
    "parameterized job",
    "is stopped",
    "can't revert",
    "cannot update",
    "not found",
)


def nomad_error(call: str, nomad_status: int | None, text: str) -> NomadError:
    """The error for Nomad's answer ``nomad_status``/``text`` to ``call``.

    Mapping: a lost check-and-set or a blocking deployment -> ``NomadConflict`` (409); other
    4xx except 401/403, and 500s whose text is a validation error -> ``NomadRejected`` (422,
    Nomad's message passed through); everything else -> ``NomadError`` (502).
    """
    text = " ".join(text.split())[:_MAX_MESSAGE] or "(no message)"
    if any(marker in text for marker in _CONFLICT_TEXT):
        return NomadConflict(nomad_status, text, call=call)
    if nomad_status is not None and 400 <= nomad_status < 500 and nomad_status not in (401, 403):
        return NomadRejected(nomad_status, text, call=call)
    if nomad_status == 500 and any(marker in text for marker in _REJECTED_500_TEXT):
        return NomadRejected(nomad_status, text, call=call)
    return NomadError(nomad_status, text, call=call)


# -- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterResult:
    """Reply of register, revert, scale and stop. ``job_modify_index`` is what a deployment's
    ``JobSpecModifyIndex`` equals (§1.7); ``eval_id`` is None when no evaluation was made
    (parameterized parents, §1.2)."""

    eval_id: str | None
    job_modify_index: int
    warnings: str = ""

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> RegisterResult:
        return cls(
            eval_id=reply.get("EvalID") or None,
            job_modify_index=int(reply.get("JobModifyIndex") or 0),
            warnings=reply.get("Warnings") or "",
        )


@dataclass(frozen=True)
class DispatchResult:
    """``eval_id`` is None when the idempotency token matched an existing child (§1.6)."""

    dispatched_job_id: str
    eval_id: str | None


def deployment_finished(deployment: Mapping[str, Any]) -> bool:
    """The default ``until`` of ``watch_deployment``: successful, failed or cancelled."""
    return deployment.get("Status") in TERMINAL_DEPLOYMENT


def _describe_deployment(deployment: Any) -> str:
    if not isinstance(deployment, dict):
        return "no deployment"
    return f"status {deployment.get('Status')}: {deployment.get('StatusDescription') or '-'}"


def _describe_allocations(allocs: Any) -> str:
    if not isinstance(allocs, list) or not allocs:
        return "no allocations"
    states = sorted(f"{a.get('Name')}={a.get('ClientStatus')}" for a in allocs)
    return ", ".join(states[:10])


# -- the client ---------------------------------------------------------------------------------------


class NomadClient:
    """Nomad's HTTP API as the control loop needs it. Thread-safe as far as ``requests`` is."""

    def __init__(self, settings: NomadSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        # The endpoint classes directly, not nomad.Nomad(): that one falls back to NOMAD_* env
        # vars for anything not given, so explicit settings could be silently overridden.
        opts: dict[str, Any] = {
            "address": settings.addr,
            "token": settings.token,
            "namespace": settings.namespace,
            "region": settings.region,
            "timeout": settings.timeout,
            "verify": settings.tls_verify,
            "cert": settings.tls_client_cert or (),
            "session": self.session,
        }
        self._job = nomad.api.Job(**opts)
        self._jobs = nomad.api.Jobs(**opts)
        self._deployment = nomad.api.Deployment(**opts)
        self._allocation = nomad.api.Allocation(**opts)

    def in_namespace(self, namespace: str) -> NomadClient:
        """The same client bound to ``namespace`` (sharing the session): every call of a
        client goes to its one namespace (the query parameter wins over the job's, §1.0)."""
        if namespace == self.settings.namespace:
            return self
        return NomadClient(replace(self.settings, namespace=namespace), self.session)

    # -- jobs -------------------------------------------------------------------------------------
    def parse(self, hcl: str) -> dict[str, Any]:
        """``POST /v1/jobs/parse`` with Canonicalize: the bare ``api.Job`` (§1.1)."""
        with self._calling("parse of the job spec"):
            job: dict[str, Any] = self._jobs.parse(hcl, canonicalize=True)
        return job

    def register(
        self,
        job: Mapping[str, Any],
        enforce_index: int | None = None,
        *,
        preserve_counts: bool = False,
        submission: str | None = None,
    ) -> RegisterResult:
        """``POST /v1/jobs`` with the job wrapped as ``{"Job": ...}`` (§1.0).

        ``enforce_index``: None registers unconditionally, 0 only creates, N only updates a job
        whose ``JobModifyIndex`` is still N (§1.2). ``submission`` keeps the HCL source with the
        version (pitfall 16).
        """
        job_id = str(job.get("ID") or "")
        call = f"register of job {job_id!r}"
        self._check_scope(job, call)
        body: dict[str, Any] = {"Job": dict(job)}
        if enforce_index is not None:
            body.update(EnforceIndex=True, JobModifyIndex=enforce_index)
        if preserve_counts:
            body["PreserveCounts"] = True
        if submission is not None:
            body["Submission"] = {"Source": submission, "Format": "hcl2"}
        with self._calling(call):
            reply = self._jobs.register_job(body)
        return RegisterResult.from_reply(reply)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The current job, or None if Nomad does not know it."""
        with self._calling(f"read of job {_checked_id(job_id)!r}", missing_ok=True):
            found: dict[str, Any] = self._job.get_job(job_id)
            return found
        return None

    def versions(self, job_id: str) -> list[dict[str, Any]]:
        """The job's retained versions, newest first ([] for an unknown job)."""
        with self._calling(f"read of versions of job {_checked_id(job_id)!r}", missing_ok=True):
            versions: list[dict[str, Any]] = self._job.get_versions(job_id)["Versions"]
            return versions
        return []

    def jobs(self, prefix: str) -> list[dict[str, Any]]:
        """Stubs of the namespace's jobs whose ID starts with ``prefix``, with their meta
        (``?meta=true``, §1.3)."""
        found, _ = self._get_json(
            "/v1/jobs", f"list of jobs {prefix!r}*", {"prefix": prefix, "meta": "true"}
        )
        return list(found or [])

    def submission(self, job_id: str, version: int) -> str | None:
        """The HCL source a job version was registered with (§1.3), None if Nomad has none
        (registered without one, or gone)."""
        path = _job_path(job_id, "/submission")
        call = f"read of the source of job {job_id!r} version {version}"
        try:
            found, _ = self._get_json(path, call, {"version": str(version)})
        except NomadError as exc:
            if exc.nomad_status == 404:
                return None
            raise
        source = (found or {}).get("Source")
        return source if isinstance(source, str) else None

    def allocations(self, job_id: str, all_allocs: bool = False) -> list[dict[str, Any]]:
        """Allocation stubs of the job, newest first (``all_allocs``: of earlier jobs with
        the same ID too)."""
        with self._calling(f"read of allocations of job {_checked_id(job_id)!r}"):
            allocs: list[dict[str, Any]] = self._job.get_allocations(
                job_id, all_=True if all_allocs else None
            )
        return allocs

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        with self._calling(f"read of allocation {_checked_id(alloc_id)!r}"):
            alloc: dict[str, Any] = self._allocation.get_allocation(alloc_id)
        return alloc

    def deployment(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest deployment, or None (Nomad answers ``null``, §1.7)."""
        with self._calling(f"read of the deployment of job {_checked_id(job_id)!r}"):
            dep: dict[str, Any] | None = self._job.get_deployment(job_id)
        return dep

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        """An evaluation; non-empty ``FailedTGAllocs`` means placement failed (§1.11)."""
        found: dict[str, Any] = self._get_json(
            f"/v1/evaluation/{quote(_checked_id(eval_id), safe='')}", f"read of eval {eval_id!r}"
        )[0]
        return found

    def dispatch(
        self,
        job_id: str,
        meta: Mapping[str, str],
        payload: bytes | None = None,
        idempotency_token: str | None = None,
        *,
        id_prefix_template: str | None = None,
    ) -> DispatchResult:
        """Dispatch a parameterized job; the token goes in the query string (§1.6) so a
        retried push with the same token gets the same child back."""
        body: dict[str, Any] = {"Meta": dict(meta)}
        if payload is not None:
            body["Payload"] = base64.b64encode(payload).decode("ascii")
        if id_prefix_template:
            body["IdPrefixTemplate"] = id_prefix_template
        params = {"idempotency_token": idempotency_token} if idempotency_token else {}
        reply = self._send_json(
            "POST", _job_path(job_id, "/dispatch"), f"dispatch of job {job_id!r}", body, params
        )
        return DispatchResult(str(reply["DispatchedJobID"]), reply.get("EvalID") or None)

    def revert(
        self, job_id: str, version: int, enforce_prior_version: int | None = None
    ) -> RegisterResult:
        """Re-register ``version`` as a new version (by number: never by tag, pitfall 2)."""
        with self._calling(f"revert of job {_checked_id(job_id)!r} to version {version}"):
            reply = self._job.revert_job(job_id, version, enforce_prior_version)
        return RegisterResult.from_reply(reply)

    def stop(self, job_id: str, purge: bool = False) -> RegisterResult:
        """Deregister the job; ``purge`` also forgets its versions at once (§1.12)."""
        with self._calling(f"stop of job {_checked_id(job_id)!r}"):
            reply = self._job.deregister_job(job_id, purge=True if purge else None)
        return RegisterResult.from_reply(reply)

    def scale(self, job_id: str, group: str, count: int, message: str = "") -> RegisterResult:
        """Set a group's count; refused (``NomadConflict``) during a deployment (pitfall 6)."""
        body = {"Count": count, "Target": {"Job": job_id, "Group": group}, "Message": message}
        reply = self._send_json(
            "POST", _job_path(job_id, "/scale"), f"scale of {job_id!r} group {group!r}", body
        )
        return RegisterResult.from_reply(reply)

    def tag_version(self, job_id: str, version: int, tag: str, description: str = "") -> None:
        """Tag a version so Nomad never prunes it (§1.2); ``Version`` is always sent."""
        path = _job_path(job_id, f"/versions/{quote(tag, safe='')}/tag")
        body = {"Version": version, "Description": description}
        self._send_json("POST", path, f"tag of job {job_id!r} version {version}", body)

    # -- deployments ------------------------------------------------------------------------------
    def promote(self, deployment_id: str, groups: Sequence[str] | None = None) -> dict[str, Any]:
        """Promote the canaries of all groups, or of ``groups``."""
        with self._calling(f"promote of deployment {_checked_id(deployment_id)!r}"):
            if groups is None:
                reply: dict[str, Any] = self._deployment.promote_deployment_all(deployment_id)
            else:
                reply = self._deployment.promote_deployment_groups(deployment_id, list(groups))
        return reply

    def fail_deployment(self, deployment_id: str) -> dict[str, Any]:
        """Mark a stuck deployment failed (Yurt's own deadline, pitfall 5); Nomad then
        auto-reverts if it can (``RevertedJobVersion``)."""
        with self._calling(f"fail of deployment {_checked_id(deployment_id)!r}"):
            reply: dict[str, Any] = self._deployment.fail_deployment(deployment_id)
        return reply

    def watch_deployment(
        self,
        deployment_id: str,
        until: Callable[[dict[str, Any]], bool] = deployment_finished,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Follow a deployment with blocking queries until ``until(deployment)`` is true;
        raise ``NomadTimeout`` (with the last state seen) after ``timeout`` seconds."""
        path = f"/v1/deployment/{quote(_checked_id(deployment_id), safe='')}"
        found: dict[str, Any] = self._watch(
            path, f"watch of deployment {deployment_id[:8]}", until, timeout, _describe_deployment
        )
        return found

    def watch_allocations(
        self,
        job_id: str,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 600.0,
        all_allocs: bool = False,
    ) -> list[dict[str, Any]]:
        """Follow a job's allocation stubs with blocking queries until ``until(allocs)``."""
        params = {"all": "true"} if all_allocs else {}
        found: list[dict[str, Any]] = self._watch(
            _job_path(job_id, "/allocations"),
            f"watch of allocations of job {job_id!r}",
            until,
            timeout,
            _describe_allocations,
            params,
        )
        return found

    # -- logs ---------------------------------------------------------------------------------------
    def alloc_logs(
        self,
        alloc_id: str,
        task: str,
        stream: str = "stdout",
        follow: bool = False,
        offset: int = 0,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
    ) -> Iterator[bytes]:
        """The task's output from byte ``offset`` on, as it arrives.

        Without ``follow``: what has been written so far. With ``follow``: also what comes
        later, until the task is dead or its allocation terminal (checked every
        ``poll_interval`` seconds between reads; Nomad's heartbeats make reads return at
        least every second), then whatever was still unread. Waits for a task that has not
        started yet. ``timeout`` (seconds) bounds the whole stream with ``NomadTimeout``.
        Setting ``stop`` ends the stream quietly within about a second (Nomad's heartbeat
        frames wake the reader, §1.9), so a reader thread can be told to let go.
        """
        if stream not in LOG_STREAMS:
            raise ValueError(f"stream must be one of {LOG_STREAMS}, not {stream!r}")
        if offset < 0:
            raise ValueError("offset must be >= 0")
        _checked_id(alloc_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._log_chunks(
            alloc_id,
            task,
            stream,
            follow,
            offset,
            deadline,
            poll_interval,
            stop or threading.Event(),
        )

    def _log_chunks(
        self,
        alloc_id: str,
        task: str,
        stream: str,
        follow: bool,
        position: int,
        deadline: float | None,
        poll: float,
        cancel: threading.Event,
    ) -> Iterator[bytes]:
        call = f"read of {stream} of task {task!r} in allocation {alloc_id[:8]}"
        while not cancel.is_set():
            # Once the task is over, one plain read to the end of the file finishes the job.
            finished = not follow or self._task_finished(alloc_id, task, call)
            resp = self._open_logs(alloc_id, task, stream, not finished, position, call)
            if resp is None:  # the task has not started yet: nothing to read so far
                if finished:
                    return
                _pause(poll, deadline, call, cancel)
                continue
            received = 0
            with resp:
                stop = None if finished else (lambda: self._task_finished(alloc_id, task, call))
                for data in self._frames(resp, stop, poll, deadline, call, cancel):
                    received += len(data)
                    position += len(data)
                    yield data
            if finished:
                return
            if not received:  # the stream ended or stalled without output: do not spin
                _pause(poll, deadline, call, cancel)

    def _open_logs(
        self, alloc_id: str, task: str, stream: str, follow: bool, offset: int, call: str
    ) -> requests.Response | None:
        params = {
            "task": task,
            "type": stream,
            "follow": "true" if follow else "false",
            "offset": str(offset),
            "origin": "start",
        }
        path = f"/v1/client/fs/logs/{quote(alloc_id, safe='')}"
        try:
            return self._send("GET", path, call, params=params, stream=True)
        except NomadRejected as exc:
            if exc.nomad_status == 404 and "not started" in exc.nomad_message:
                return None
            raise

    def _frames(
        self,
        resp: requests.Response,
        stop: Callable[[], bool] | None,
        poll: float,
        deadline: float | None,
        call: str,
        cancel: threading.Event,
    ) -> Iterator[bytes]:
        """Data of the frames in ``resp``; ends early when ``stop()`` says so (checked every
        ``poll`` seconds), when ``cancel`` is set (checked after every read, heartbeats
        included) or the connection breaks (the caller reconnects from the offset)."""
        decoder = FrameDecoder()
        checked = time.monotonic()
        try:
            for chunk in resp.iter_content(chunk_size=_READ_SIZE):
                for frame in decoder.feed(chunk):
                    if frame.data:
                        yield frame.data
                _check_deadline(deadline, call)
                if cancel.is_set():
                    return
                if stop is not None and time.monotonic() - checked >= poll:
                    checked = time.monotonic()
                    if stop():
                        return
        except FrameError as exc:
            raise NomadError(None, f"unreadable log stream: {exc}", call=call) from exc
        except requests.RequestException:
            return  # a read timeout or a dropped stream: the caller decides whether to resume

    def _task_finished(self, alloc_id: str, task: str, call: str) -> bool:
        alloc = self._get_json(f"/v1/allocation/{quote(alloc_id, safe='')}", call)[0]
        state = (alloc.get("TaskStates") or {}).get(task) or {}
        return alloc.get("ClientStatus") in TERMINAL_ALLOC or state.get("State") == "dead"

    # -- blocking queries -----------------------------------------------------------------------------
    def _watch(
        self,
        path: str,
        call: str,
        until: Callable[[Any], bool],
        timeout: float,
        describe: Callable[[Any], str],
        params: Mapping[str, str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            started = time.monotonic()
            wait = min(self.settings.max_wait, max(deadline - started, 0.1))
            data, new_index = self._get_json(path, call, params, index=index, wait=wait)
            if until(data):
                return data
            if time.monotonic() >= deadline:
                raise NomadTimeout(
                    f"not done within {timeout:g}s ({describe(data)})", call=call, last=data
                )
            # An index that goes backwards (a restored or changed leader) restarts the watch.
            index = new_index if new_index > index else (0 if new_index < index else index)
            gap = _MIN_POLL_GAP - (time.monotonic() - started)
            if gap > 0:
                time.sleep(gap)

    # -- HTTP plumbing ---------------------------------------------------------------------------------
    def _get_json(
        self,
        path: str,
        call: str,
        params: Mapping[str, str] | None = None,
        *,
        index: int = 0,
        wait: float = 0.0,
    ) -> tuple[Any, int]:
        """GET ``path``; with ``index`` a blocking query. Returns the body and X-Nomad-Index."""
        query = dict(params or {})
        timeout = self.settings.timeout
        if index > 0:
            query.update(index=str(index), wait=f"{max(int(wait * 1000), 1)}ms")
            timeout += wait + wait / 16  # Nomad adds up to wait/16 of jitter (§1.0)
        resp = self._send("GET", path, call, params=query, timeout=timeout)
        try:
            new_index = int(resp.headers.get("X-Nomad-Index") or 0)
        except ValueError:
            new_index = 0
        return _json(resp, call), new_index

    def _send_json(
        self,
        method: str,
        path: str,
        call: str,
        body: Mapping[str, Any],
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        reply: dict[str, Any] = _json(
            self._send(method, path, call, params=params, body=body), call
        )
        return reply

    def _send(
        self,
        method: str,
        path: str,
        call: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        query = {"namespace": self.settings.namespace, **(params or {})}
        if self.settings.region:
            query["region"] = self.settings.region
        headers = {"X-Nomad-Token": self.settings.token} if self.settings.token else {}
        with self._calling(call):
            resp = self.session.request(
                method,
                self.settings.addr + path,
                params=query,
                json=body,
                headers=headers,
                timeout=(self.settings.timeout, timeout or self.settings.timeout),
                verify=self.settings.tls_verify,
                cert=self.settings.tls_client_cert,
                stream=stream,
                allow_redirects=False,
            )
            if not resp.ok:
                text = resp.text
                resp.close()
                raise nomad_error(call, resp.status_code, self._redact(text))
        return resp

    @contextmanager
    def _calling(self, call: str, missing_ok: bool = False) -> Iterator[None]:
        """Turn python-nomad's and requests' exceptions into ``NomadError``; with
        ``missing_ok`` a 404 leaves the block silently (the caller returns its default)."""
        try:
            yield
        except nomad.api.exceptions.BaseNomadException as exc:
            resp = exc.nomad_resp
            if isinstance(resp, requests.Response):
                if missing_ok and resp.status_code == 404:
                    return
                raise nomad_error(call, resp.status_code, self._redact(resp.text)) from None
            raise self._transport_error(call, resp) from None
        except requests.RequestException as exc:
            raise self._transport_error(call, exc) from None
        except ValueError as exc:  # a body that is not JSON (a proxy's error page, ...)
            raise NomadError(None, f"unreadable answer from Nomad ({exc})", call=call) from None

    def _transport_error(self, call: str, exc: object) -> NomadError:
        if isinstance(exc, requests.Timeout):
            reason = f"no answer from Nomad at {self.settings.addr} in time"
        else:
            reason = f"cannot reach Nomad at {self.settings.addr} ({type(exc).__name__})"
        return NomadError(None, reason, call=call)

    def _redact(self, text: str) -> str:
        """Nomad does not echo tokens, but a proxy in between might: never pass one on."""
        for secret in (self.settings.token, self.settings.consul_token):
            if secret:
                text = text.replace(secret, "<redacted>")
        return text

    def _check_scope(self, job: Mapping[str, Any], call: str) -> None:
        """The query-string namespace/region override the job's own (§1.0): a job rendered
        for another namespace would silently land in this one, so refuse it."""
        checks = (("Namespace", self.settings.namespace, "NOMAD_NAMESPACE"),
                  ("Region", self.settings.region, "NOMAD_REGION"))  # fmt: skip
        for key, configured, var in checks:
            own = job.get(key)
            if configured and own and own != configured:
                raise NomadRejected(
                    None,
                    f"the job's {key.lower()} is {own!r} but this client uses {configured!r} ({var})",
                    call=call,
                )


# -- helpers --------------------------------------------------------------------------------------------


def _checked_id(value: str) -> str:
    """IDs go into URL paths (python-nomad does not escape them): plain characters only."""
    if not _ID_RE.match(value):
        raise ValueError(f"invalid Nomad ID {value[:100]!r}")
    return value


def _job_path(job_id: str, suffix: str = "") -> str:
    # Dispatched children are "<parent>/dispatch-...": escaped like the Go client does (§1.0).
    return f"/v1/job/{quote(_checked_id(job_id), safe='')}{suffix}"


def _json(resp: requests.Response, call: str) -> Any:
    try:
        return resp.json()
    except ValueError as exc:
        raise NomadError(None, f"unreadable answer from Nomad ({exc})", call=call) from None


def _check_deadline(deadline: float | None, call: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise NomadTimeout("the deadline passed while following the logs", call=call)


def _pause(seconds: float, deadline: float | None, call: str, cancel: threading.Event) -> None:
    _check_deadline(deadline, call)
    if deadline is not None:
        seconds = min(seconds, max(deadline - time.monotonic(), 0.0))
    cancel.wait(seconds)
