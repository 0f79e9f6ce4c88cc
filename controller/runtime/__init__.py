"""Runtimes: what runs releases and routes traffic to them (local: supervisord + Caddy; nomad)."""
