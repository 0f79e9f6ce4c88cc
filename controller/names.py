"""Naming rules shared by the API, CLI, git receive and (later) job templates.

Everything a user names is checked here before it reaches a shell, a path, a URL or a template.
"""

from __future__ import annotations

import re

from controller.errors import InvalidParams

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]\Z")
APP_NAME_RULE = (
    "app names are 3 to 30 characters: lowercase letters, digits and dashes, "
    "starting with a letter and not ending with a dash"
)
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
PROCESS_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}\Z")
BUILD_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}\Z")

# Names that would collide with our own URLs, hostnames or accounts.
RESERVED_APP_NAMES = frozenset(
    {"api", "www", "git", "yurt", "admin", "root", "internal", "static", "assets", "default"}
)


def check_app_name(name: object) -> str:
    """Return ``name`` if it is a valid, non-reserved app name, else raise InvalidParams."""
    if not isinstance(name, str) or not APP_NAME_RE.match(name):
        shown = name if isinstance(name, str) and len(name) <= 64 else "(given name)"
        raise InvalidParams(f"Invalid app name {shown!r}: {APP_NAME_RULE}.")
    if "--" in name:
        raise InvalidParams(f"Invalid app name {name!r}: two dashes in a row are not allowed.")
    if name in RESERVED_APP_NAMES:
        raise InvalidParams(f"The app name {name!r} is reserved; choose another.")
    return name


def is_app_name(name: str) -> bool:
    try:
        check_app_name(name)
    except InvalidParams:
        return False
    return True


def check_process_type(name: str) -> str:
    if not PROCESS_TYPE_RE.match(name):
        raise InvalidParams(
            f"Invalid process type {name[:64]!r}: use 1 to 63 letters, digits, '_' or '-'."
        )
    return name


def check_build_id(build_id: str) -> str:
    if not BUILD_ID_RE.match(build_id):
        raise InvalidParams(
            f"Invalid build id {build_id[:40]!r}: build ids are 26-character ULIDs."
        )
    return build_id


HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
HOSTNAME_RULE = (
    "a domain is a DNS name such as www.example.com: two or more dot-separated labels of "
    "letters, digits and dashes (1 to 63 each, not starting or ending with a dash), "
    "253 characters at most, not an IP address"
)


def check_hostname(value: object) -> str:
    """Return ``value`` lowercased (and without a trailing dot) if it is a DNS hostname that
    can be routed, else raise InvalidParams."""
    shown = value if isinstance(value, str) and len(value) <= 80 else "(given domain)"
    if not isinstance(value, str):
        raise InvalidParams(f"Invalid domain {shown!r}: {HOSTNAME_RULE}.")
    host = value.strip().lower().removesuffix(".")
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(HOSTNAME_LABEL_RE.match(label) for label in labels)
        or labels[-1].isdigit()  # 10.0.0.1 and friends
    ):
        raise InvalidParams(f"Invalid domain {shown!r}: {HOSTNAME_RULE}.")
    return host
