"""The cluster build task: what runs inside the builder image of the ``yurt-build`` Nomad job.

``python -m controller.builder`` reads the dispatch meta and settings from its environment,
runs the same buildpack runner as the local runtime (or ``buildah`` for Dockerfile apps),
assembles an OCI image (the stack image plus one layer holding the slug at ``/app``), pushes it
to the cluster registry and reports the result to the controller. See docs/cluster.md.
"""
