"""The nomad runtime: releases as Nomad job versions, routed through Consul, secrets from Vault.

``jobspec`` renders the job specs (templates in ``jobspecs/``) from typed inputs; ``hcl`` is the
one quoting filter those templates use for every value.
"""

from controller.runtime.nomad.jobspec import (
    AppJobSpec,
    BuildJobSpec,
    DeploySettings,
    HealthCheck,
    JobSpecError,
    ReleaseJobSpec,
    Resources,
    render_app_job,
    render_build_job,
    render_release_job,
)

__all__ = [
    "AppJobSpec",
    "BuildJobSpec",
    "DeploySettings",
    "HealthCheck",
    "JobSpecError",
    "ReleaseJobSpec",
    "Resources",
    "render_app_job",
    "render_build_job",
    "render_release_job",
]
