"""Yurt: a git-push PaaS for Nomad, Consul and Vault, with an embedded single-server runtime."""

__version__ = "0.1.0"
