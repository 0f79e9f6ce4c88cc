"""Config vars: the app's secrets, stored in Vault/OpenBao KV v2 (one secret per app).

- :mod:`.validate`: the rules for names and values (pure functions).
- :mod:`.store`: :class:`ConfigStore`, reading and changing config versions through hvac.
- :mod:`.openbao`: :class:`EmbeddedOpenBao`, the local runtime's own OpenBao server.
"""

from controller.secrets.store import ConfigChange, ConfigStore, ConfigVersion, VaultSettings

__all__ = ["ConfigChange", "ConfigStore", "ConfigVersion", "VaultSettings"]
