"""Builds: queueing, running buildpacks, and their logs."""
