"""``yurt server``: the controller in the foreground under waitress, plus the sshd it owns.

waitress de-chunks request bodies (git sends chunked bodies for pushes over 1 MiB) and
streams responses as they are written (build output for minutes).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import waitress

from controller import __version__
from controller.secrets.store import VaultSettings
from controller.settings import ClusterSettings, Settings, default_data_dir

if TYPE_CHECKING:
    from controller.git.ssh import SshServer
    from controller.platform import Platform

log = logging.getLogger("yurt.server")


@click.command("server")
@click.option(
    "--data-dir",
    envvar="YURT_DATA_DIR",
    type=click.Path(path_type=Path),
    default=None,
    help="Where state lives [default: ~/.local/share/yurt].",
)
@click.option(
    "--listen",
    envvar="YURT_LISTEN",
    default="127.0.0.1:7100",
    show_default=True,
    help="HOST:PORT for the API and git over HTTP.",
)
@click.option(
    "--public-url",
    envvar="YURT_PUBLIC_URL",
    default="",
    help="URL users reach the server at, if not http://LISTEN.",
)
@click.option(
    "--ssh-listen",
    envvar="YURT_SSH_LISTEN",
    default="",
    help="HOST:PORT for git push over SSH (starts sshd); off when empty.",
)
@click.option(
    "--max-builds",
    envvar="YURT_MAX_BUILDS",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Builds of different apps that may run at once.",
)
@click.option(
    "--build-timeout",
    envvar="YURT_BUILD_TIMEOUT",
    type=click.FloatRange(1),
    default=900.0,
    show_default=True,
    help="Seconds before a build is stopped.",
)
@click.option(
    "--build-log-cap",
    envvar="YURT_BUILD_LOG_CAP",
    type=click.IntRange(1024),
    default=20 * 1024 * 1024,
    show_default=True,
    help="Bytes of build output after which a build is stopped and failed.",
)
@click.option(
    "--buildpacks-dir",
    envvar="YURT_BUILDPACKS_DIR",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Use the buildpacks in this directory instead of the bundled ones.",
)
@click.option(
    "--router-listen",
    envvar="YURT_ROUTER_LISTEN",
    default="127.0.0.1:8080",
    show_default=True,
    help="HOST:PORT where Caddy serves the apps.",
)
@click.option(
    "--router-admin-listen",
    envvar="YURT_ROUTER_ADMIN_LISTEN",
    default="127.0.0.1:7119",
    show_default=True,
    help="Loopback HOST:PORT of Caddy's admin API.",
)
@click.option(
    "--router-dns-listen",
    envvar="YURT_ROUTER_DNS_LISTEN",
    default="127.0.0.1:7118",
    show_default=True,
    help="Loopback HOST:PORT (UDP) where Caddy asks Yurt for each app's web instances.",
)
@click.option(
    "--base-domain",
    envvar="YURT_BASE_DOMAIN",
    default="localhost",
    show_default=True,
    help="Apps answer at APP.BASE_DOMAIN.",
)
@click.option(
    "--keep-apps/--stop-apps",
    envvar="YURT_KEEP_APPS",
    default=True,
    show_default=True,
    help="Leave apps (supervisord, Caddy) running when the server stops.",
)
@click.option(
    "--keep-releases",
    envvar="YURT_KEEP_RELEASES",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Releases per app whose slugs are kept for rollback (the current one always is).",
)
@click.option(
    "--openbao-listen",
    envvar="YURT_OPENBAO_LISTEN",
    default="127.0.0.1:7120",
    show_default=True,
    help="Loopback HOST:PORT of the embedded OpenBao that keeps config vars (it also uses "
    "PORT+1). Not used when VAULT_ADDR names an external Vault/OpenBao.",
)
@click.option(
    "--runtime",
    envvar="YURT_RUNTIME",
    type=click.Choice(["local", "nomad"]),
    default="local",
    show_default=True,
    help="Where apps run: this machine (supervisord + Caddy) or a Nomad cluster (NOMAD_ADDR, "
    "NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_REGION, CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN; config "
    "vars in the cluster's Vault: VAULT_ADDR is required).",
)
@click.option(
    "--registry",
    envvar="YURT_REGISTRY",
    default="registry.service.consul:5000",
    show_default=True,
    help="nomad runtime: the registry app images go to, as the cluster's clients reach it.",
)
@click.option(
    "--builder-image",
    envvar="YURT_BUILDER_IMAGE",
    default="",
    help="nomad runtime: the image build jobs run [default: REGISTRY/yurt/builder:latest].",
)
@click.option(
    "--stack-image",
    envvar="YURT_STACK_IMAGE",
    default="",
    help="nomad runtime: the base image of app images [default: the builder's].",
)
@click.option(
    "--cluster-url",
    envvar="YURT_CLUSTER_URL",
    default="",
    help="nomad runtime: this server's URL as build jobs on the cluster reach it "
    "[default: the public URL].",
)
@click.option(
    "--router",
    envvar="YURT_ROUTER",
    type=click.Choice(["traefik", "fabio", "both"]),
    default="traefik",
    show_default=True,
    help="nomad runtime: which router's Consul tags app jobs carry.",
)
@click.option(
    "--datacenters",
    envvar="YURT_DATACENTERS",
    default="dc1",
    show_default=True,
    help="nomad runtime: comma-separated Nomad datacenters jobs may run in.",
)
@click.option(
    "--threads",
    envvar="YURT_THREADS",
    type=click.IntRange(4, 512),
    default=32,
    show_default=True,
    help="HTTP worker threads (each follower of a build holds one).",
)
def server_command(
    data_dir: Path | None,
    listen: str,
    public_url: str,
    ssh_listen: str,
    max_builds: int,
    build_timeout: float,
    build_log_cap: int,
    buildpacks_dir: Path | None,
    router_listen: str,
    router_admin_listen: str,
    router_dns_listen: str,
    base_domain: str,
    keep_apps: bool,
    keep_releases: int,
    openbao_listen: str,
    runtime: str,
    registry: str,
    builder_image: str,
    stack_image: str,
    cluster_url: str,
    router: str,
    datacenters: str,
    threads: int,
) -> None:
    """Run the Yurt platform in the foreground (Ctrl-C or SIGTERM stops it)."""
    settings = Settings(
        data_dir=(data_dir or default_data_dir()).resolve(),
        listen=listen,
        public_url=public_url,
        ssh_listen=ssh_listen,
        max_parallel_builds=max_builds,
        build_timeout=build_timeout,
        build_log_cap=build_log_cap,
        router_listen=router_listen,
        router_admin_listen=router_admin_listen,
        router_dns_listen=router_dns_listen,
        base_domain=base_domain,
        keep_apps=keep_apps,
        releases_kept=keep_releases,
        openbao_listen=openbao_listen,
        vault=_vault_settings(),
        threads=threads,
        runtime=runtime,
    )
    if runtime == "nomad":
        settings = dataclasses.replace(
            settings,
            cluster=_cluster_settings(
                settings, registry, builder_image, stack_image, cluster_url, router, datacenters
            ),
        )
    if buildpacks_dir is not None:
        settings = dataclasses.replace(settings, buildpacks_dir=buildpacks_dir.resolve())
    _check_listen(listen, "--listen")
    _check_listen(router_listen, "--router-listen")
    _check_listen(router_admin_listen, "--router-admin-listen")
    _check_listen(router_dns_listen, "--router-dns-listen")
    _check_listen(openbao_listen, "--openbao-listen")
    if ssh_listen:
        _check_listen(ssh_listen, "--ssh-listen")
    serve(settings)


def _vault_settings() -> VaultSettings | None:
    try:
        return VaultSettings.from_env(os.environ)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _cluster_settings(
    settings: Settings,
    registry: str,
    builder_image: str,
    stack_image: str,
    cluster_url: str,
    router: str,
    datacenters: str,
) -> ClusterSettings:
    from controller.runtime.nomad.client import NomadSettings
    from controller.secrets.store import DEFAULT_MOUNT, DEFAULT_PREFIX

    vault = settings.vault
    if vault is None:
        raise click.UsageError(
            "--runtime nomad keeps config vars in the cluster's Vault, where app jobs read "
            "them: set VAULT_ADDR (and VAULT_TOKEN or VAULT_ROLE_ID/VAULT_SECRET_ID)."
        )
    if (vault.mount, vault.prefix) != (DEFAULT_MOUNT, DEFAULT_PREFIX):
        raise click.UsageError(
            f"--runtime nomad reads config vars at {DEFAULT_MOUNT}/{DEFAULT_PREFIX}/APP (the "
            "Vault policy yurt admin:vault-setup writes): unset YURT_VAULT_MOUNT and "
            "YURT_VAULT_PREFIX."
        )
    try:
        return ClusterSettings(
            nomad=NomadSettings.from_env(os.environ),
            registry=registry,
            builder_image=builder_image,
            stack_image=stack_image,
            controller_url=cluster_url,
            router=router,
            datacenters=tuple(d.strip() for d in datacenters.split(",") if d.strip()),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _watch_config_store(platform: Platform, stop: threading.Event) -> None:
    """Restart or unseal the embedded OpenBao if it dies or gets sealed."""
    assert platform.openbao is not None
    while not stop.wait(5.0):
        try:
            if platform.openbao.ensure_running():
                log.warning("the embedded OpenBao was down or sealed; it is back")
        except Exception:
            log.exception("could not restore the embedded OpenBao")


def _check_listen(value: str, option: str) -> None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)


def _restore(platform: Platform) -> None:
    try:
        restored = platform.releases.restore_missing()
    except Exception:
        log.exception("could not restore apps from the DB")
        return
    if restored:
        log.warning("restored %d app(s) from the DB: %s", len(restored), ", ".join(restored))


def serve(settings: Settings) -> None:
    from controller.platform import Platform
    from controller.web import create_app

    os.umask(0o077)  # everything the controller writes is private unless it says otherwise
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    platform = Platform.open(settings)
    interrupted = platform.builds.recover_interrupted()
    if interrupted:
        log.warning("marked %d build(s) interrupted by the last stop as failed", interrupted)
    _first_start(platform)
    for app in platform.repos.existing():
        platform.repos.configure(app)
    ssh = _start_ssh(platform) if settings.ssh_listen else None
    platform.start_config_store()
    stopping = threading.Event()
    if platform.openbao is not None:
        threading.Thread(
            target=_watch_config_store, args=(platform, stopping), name="openbao", daemon=True
        ).start()
    platform.runtime.start()
    platform.releases.recover()
    # Apps whose processes are gone (a reboot empties supervisord's tmpfs run dir) start again
    # from the DB in the background, so the API answers meanwhile.
    threading.Thread(target=_restore, args=(platform,), name="restore", daemon=True).start()
    if os.geteuid() != 0 and settings.cluster is None:
        click.echo(
            "Note: yurt server is not running as root, so apps and builds run as this user "
            "and share its rights (see docs/local-runtime.md).",
            err=True,
        )
    host, _, port = settings.listen.rpartition(":")
    server = waitress.create_server(
        create_app(platform),
        host=host.strip("[]"),
        port=int(port),
        threads=settings.threads,
        max_request_body_size=settings.max_push_bytes,
        channel_timeout=3600,
        ident="yurt",
    )
    _write_run_file(settings)
    if settings.cluster is None:
        apps_at = f"http://APP.{settings.base_domain}:{settings.router_listen.rpartition(':')[2]}"
    else:
        apps_at = (
            f"http://APP.{settings.base_domain} on the Nomad cluster at "
            f"{settings.cluster.nomad.addr} (namespace {settings.cluster.nomad.namespace})"
        )
    click.echo(
        f"Yurt {__version__} listening on {settings.base_url} (data in {settings.data_dir}); "
        f"apps at {apps_at}",
        err=True,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("Yurt is stopping...", err=True)
        (settings.run_dir / "controller.json").unlink(missing_ok=True)
        stopping.set()
        platform.close()
        platform.runtime.shutdown(keep_apps=settings.keep_apps)
        if platform.openbao is not None and not settings.keep_apps:
            platform.openbao.stop()
        if ssh is not None:
            ssh.stop()
        server.close()


def _first_start(platform: Platform) -> None:
    from controller.cli.config import install_git_credential_helper, write_cli_config

    settings = platform.settings
    token = platform.tokens.ensure_admin_token(settings.admin_token_file)
    if token is None:
        return
    path = write_cli_config(settings.base_url, token)
    try:
        install_git_credential_helper(settings.base_url)
    except Exception as exc:  # git missing or HOME read-only: the CLI still works
        log.warning("could not install the git credential helper: %s", exc)
    click.echo(f"Created the admin API token in {settings.admin_token_file}", err=True)
    click.echo(f"Wrote the CLI config to {path}; 'yurt apps' works now.", err=True)


def _start_ssh(platform: Platform) -> SshServer:
    from controller.git.ssh import SshServer

    ssh = SshServer(platform.settings)
    ssh.start()
    platform.keys.on_change = ssh.sync_keys
    ssh.sync_keys(platform.keys.list())
    platform.apps.ssh_base = ssh.git_url_base()
    click.echo(f"git push over SSH on {platform.settings.ssh_listen}", err=True)
    return ssh


def _write_run_file(settings: Settings) -> None:
    """Tell our git hooks where the controller listens (read by controller.git.hook)."""
    path = settings.run_dir / "controller.json"
    tmp = path.with_suffix(".tmp")
    host, _, port = settings.listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    tmp.write_text(json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}))
    tmp.chmod(0o600)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(server_command())
