"""The fake Consul agent: catalog and KV state (``state``) and HTTP routes (``api``)."""
