"""The local runtime: supervisord runs app processes, Caddy routes to them, on one server."""
