"""``yurt jobspec:render``: the Nomad job spec Yurt would submit, without any cluster.

For operators who review what runs (the HCL is exactly what the nomad runtime parses and
registers, from the same templates in ``jobspecs/``) and for tests. Nothing is contacted: the
process types come from the app directory's Procfile, the web health check from its app.json.
"""

from __future__ import annotations

from pathlib import Path

import click

from controller.builds.appjson import web_check
from controller.builds.procfile import ProcfileError, parse_procfile
from controller.cli.errors import CliError
from controller.errors import YurtError

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def parse_formation(text: str) -> dict[str, int]:
    """``web=2,worker=1`` -> {"web": 2, "worker": 1}."""
    formation: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            raise CliError(f"Invalid formation {part!r}: use TYPE=COUNT, e.g. web=2,worker=1.")
        formation[name.strip()] = int(count)
    return formation


@click.command("jobspec:render")
@click.option("--app", "app", required=True, help="The app's name (its job ID).")
@click.option(
    "--app-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    show_default=True,
    help="Where the app's Procfile and app.json are.",
)
@click.option("--release", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--image",
    default="",
    help="The release's image, pinned by digest [default: REGISTRY/APP@sha256:0...0].",
)
@click.option("--build-id", default="01J00000000000000000000000", show_default=True)
@click.option(
    "--config-version",
    type=click.IntRange(0),
    default=None,
    help="The Vault KV version of the app's config vars (none: no Vault blocks).",
)
@click.option("--base-domain", default="localhost", show_default=True)
@click.option("--domain", "domains", multiple=True, help="More hostnames (repeatable).")
@click.option(
    "--router",
    type=click.Choice(["traefik", "fabio", "both"]),
    default="traefik",
    show_default=True,
)
@click.option("--formation", default="", help="TYPE=COUNT,... [default: web=1, others 0].")
@click.option("--namespace", default="yurt", show_default=True)
@click.option("--registry", default="registry.service.consul:5000", show_default=True)
@click.option(
    "--job",
    type=click.Choice(["app", "release", "build"]),
    default="app",
    show_default=True,
    help="Which job: the app's service job, its release phase, or the parameterized build job.",
)
@click.option(
    "--controller-url",
    default="http://yurt.service.consul:7100",
    show_default=True,
    help="For --job build: the controller as build tasks reach it.",
)
def render_command(
    app: str,
    app_dir: Path,
    release: int,
    image: str,
    build_id: str,
    config_version: int | None,
    base_domain: str,
    domains: tuple[str, ...],
    router: str,
    formation: str,
    namespace: str,
    registry: str,
    job: str,
    controller_url: str,
) -> None:
    """Print an app's Nomad job spec; needs no cluster."""
    from controller.runtime.nomad.jobspec import (
        AppJobSpec,
        BuildJobSpec,
        HealthCheck,
        ReleaseJobSpec,
        render_app_job,
        render_build_job,
        render_release_job,
    )

    try:
        if job == "build":
            spec = BuildJobSpec(
                builder_image=f"{registry}/yurt/builder:latest",
                controller_url=controller_url,
                registry=registry,
                namespace=namespace,
            )
            click.echo(render_build_job(spec), nl=False)
            return
        types = _process_types(app_dir)
        wanted = parse_formation(formation)
        unknown = sorted(set(wanted) - set(types))
        if unknown:
            raise CliError(f"The Procfile has no process type {', '.join(unknown)}.")
        check = _web_check(app_dir)
        app_spec = AppJobSpec(
            app=app,
            release=release,
            build_id=build_id,
            image=image or f"{registry}/{app}@{PLACEHOLDER_DIGEST}",
            config_version=config_version,
            namespace=namespace,
            processes={t: c for t, c in types.items() if t != "release"},
            formation={t: wanted.get(t, 1 if t == "web" else 0) for t in types if t != "release"},
            hosts=(f"{app}.{base_domain}", *domains),
            router=router,
            health_check=HealthCheck(path=check) if check else HealthCheck(),
        )
        if job == "release":
            if "release" not in types:
                raise CliError("The Procfile has no release process type.")
            click.echo(
                render_release_job(ReleaseJobSpec.for_app(app_spec, types["release"])), nl=False
            )
            return
        click.echo(render_app_job(app_spec), nl=False)
    except YurtError as exc:
        raise CliError(exc.message) from None


def _process_types(app_dir: Path) -> dict[str, str]:
    procfile = app_dir / "Procfile"
    try:
        return parse_procfile(procfile.read_text())
    except FileNotFoundError:
        raise CliError(f"No Procfile in {app_dir}: it names the app's process types.") from None
    except (OSError, UnicodeDecodeError, ProcfileError) as exc:
        raise CliError(str(exc)) from None


def _web_check(app_dir: Path) -> str | None:
    try:
        check = web_check((app_dir / "app.json").read_bytes())
    except OSError:
        return None
    return check.path if check else None


COMMANDS = [render_command]
