"""The rules for config var names and values, checked before anything reaches the store.

Pure functions. Every violation raises :class:`InvalidConfig` whose message states the rule and
names the key; values never appear in a message (they are the app's secrets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controller.errors import InvalidConfig
from controller.names import CONFIG_KEY_RE

MAX_VALUE_BYTES = 32 * 1024  # per value, UTF-8 encoded
MAX_CONFIG_BYTES = 64 * 1024  # per app: keys plus values, UTF-8 encoded
RESERVED_KEYS = frozenset({"PORT", "DYNO", "HOME"})
RESERVED_PREFIX = "YURT_"

KEY_RULE = "names start with a letter or '_' and contain only letters, digits and '_'"
RESERVED_RULE = "Yurt sets PORT, DYNO, HOME and every YURT_* variable itself"


def shown_key(key: object) -> str:
    """A key as it may appear in a message: quoted, cut short, and never what follows an '='
    (a mistyped ``KEY=value`` must not echo the value)."""
    if not isinstance(key, str):
        return "(a name that is not a string)"
    name, eq, _ = key.partition("=")
    if eq:
        name += "=..."
    return repr(name[:64] + ("..." if len(name) > 64 else ""))


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid config var name that apps may set."""
    if not isinstance(key, str) or not CONFIG_KEY_RE.match(key):
        raise InvalidConfig(f"Invalid config var name {shown_key(key)}: {KEY_RULE}.")
    if key in RESERVED_KEYS or key.startswith(RESERVED_PREFIX):
        raise InvalidConfig(f"The config var {key} is reserved: {RESERVED_RULE}.")
    return key


def check_value(key: str, value: object) -> str:
    """Return ``value`` if it can be stored and passed to a process as the value of ``key``."""
    if not isinstance(value, str):
        raise InvalidConfig(f"The value of {key} must be a string.")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidConfig(f"The value of {key} is not valid UTF-8 text.") from None
    if "\0" in value:
        raise InvalidConfig(
            f"The value of {key} contains a NUL byte, which cannot be passed in an environment."
        )
    if size > MAX_VALUE_BYTES:
        raise InvalidConfig(
            f"The value of {key} is {size} bytes; values are limited to "
            f"{MAX_VALUE_BYTES} bytes (32 KiB) each."
        )
    return value


def check_change(
    set_values: Mapping[str, object], unset: Iterable[object]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Check one requested change; return it as ``(values to set, keys to unset)``."""
    checked = {check_key(k): check_value(k, v) for k, v in set_values.items()}
    unset_keys = tuple(dict.fromkeys(check_key(k) for k in unset))
    both = [k for k in unset_keys if k in checked]
    if both:
        raise InvalidConfig(f"The config var {both[0]} cannot be both set and unset in one change.")
    return checked, unset_keys


def config_size(values: Mapping[str, str]) -> int:
    """Bytes of an app's config as counted against MAX_CONFIG_BYTES."""
    return sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in values.items())


def check_config_size(values: Mapping[str, str], changed: Iterable[str] = ()) -> None:
    """Raise if an app's whole config (after a change of the keys ``changed``) is too big."""
    size = config_size(values)
    if size > MAX_CONFIG_BYTES:
        keys = ", ".join(changed)
        setting = f"Setting {keys} would make" if keys else "That would make"
        raise InvalidConfig(
            f"{setting} the app's config {size} bytes; the config vars of an app are limited "
            f"to {MAX_CONFIG_BYTES} bytes (64 KiB) in total, names plus values."
        )
