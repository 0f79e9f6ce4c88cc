"""HCL2 literals for the job spec templates: the one quoting filter every value goes through.

``hcl(value)`` turns a Python value into HCL source that means exactly that value and nothing
else: strings become double-quoted literals with every character that could end the string or
start an expression escaped (``"``, ``\\``, control and other non-printing characters, and the
template sequences ``${`` and ``%{``, written ``$${`` and ``%%{``), numbers and bools become bare
literals (Nomad's parser does not turn ``"2"`` into a count), lists and maps become HCL tuple and
object literals of quoted items. Anything else raises, so a template cannot print a value it did
not mean to (``None``, an object's ``repr``).

Two typed exceptions to "a string is only text": ``timedelta`` becomes a quoted Go duration
(``"1m30s"``), and ``Interpolated`` joins escaped text with ``RuntimeVar`` references such as
``${NOMAD_META_build_id}`` that Nomad keeps verbatim for the client to fill in at run time.
The result is an ``HCL`` string, the only kind of value the templates may output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

#: Nomad run-time references (``NOMAD_META_x``, ``node.unique.id``, ``attr.kernel.name``).
#: HCL variables (``var.x``, ``local.x``) and function calls are evaluated by Nomad, so they are
#: refused here.
_RUNTIME_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*\Z")
_INLINE_WIDTH = 72
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class HCL(str):
    """Source text produced by ``hcl()``; the template environment refuses any other output."""

    __slots__ = ()


@dataclass(frozen=True)
class RuntimeVar:
    """A variable Nomad interpolates on the client, e.g. ``RuntimeVar("NOMAD_META_build_id")``."""

    name: str

    def __post_init__(self) -> None:
        root = self.name.split(".", 1)[0]
        if not _RUNTIME_VAR.match(self.name) or root in ("var", "local"):
            raise ValueError(f"not a Nomad run-time variable: {self.name!r}")


@dataclass(frozen=True)
class Interpolated:
    """One HCL string made of literal text and run-time references, in order."""

    parts: tuple[str | RuntimeVar, ...]

    def __post_init__(self) -> None:
        for part in self.parts:
            if not isinstance(part, (str, RuntimeVar)):
                raise TypeError(f"Interpolated parts are str or RuntimeVar, not {type(part)!r}")


def interpolate(*parts: str | RuntimeVar) -> Interpolated:
    return Interpolated(tuple(parts))


def hcl(value: object, indent: int = 0) -> HCL:
    """The HCL literal for ``value``; nested lines of lists and maps are indented by ``indent``."""
    return HCL(_literal(value, " " * indent))


def _literal(value: object, pad: str) -> str:
    # bool before int: True is an int in Python, but must print as `true`.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"HCL has no literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, timedelta):
        return quote(go_duration(value))
    if isinstance(value, Interpolated):
        return _interpolated(value.parts)
    if isinstance(value, Mapping):
        return _object(value, pad)
    if isinstance(value, (list, tuple)):
        return _tuple(value, pad)
    raise TypeError(f"no HCL literal for a value of type {type(value).__name__}")


def _interpolated(parts: tuple[str | RuntimeVar, ...]) -> str:
    out: list[str] = []
    text = ""  # adjacent literal parts are escaped together: "$" + "{x}" must not become "${x}"
    for part in (*parts, None):
        if isinstance(part, str):
            text += part
            continue
        body = quote(text)[1:-1]
        if part is not None and body.endswith("$"):
            body = body[:-1] + "\\u0024"  # "$" right before "${x}" would read as the escape "$${"
        out.append(body)
        text = ""
        if part is not None:
            out.append("${" + part.name + "}")
    return '"' + "".join(out) + '"'


def _tuple(items: Sequence[object], pad: str) -> str:
    inner = [_literal(item, pad + "  ") for item in items]
    inline = "[" + ", ".join(inner) + "]"
    if len(inline) <= _INLINE_WIDTH and "\n" not in inline:
        return inline
    lines = "".join(f"{pad}  {item},\n" for item in inner)
    return f"[\n{lines}{pad}]"


def _object(items: Mapping[object, object], pad: str) -> str:
    if not items:
        return "{}"
    pairs: list[tuple[str, str]] = []
    for key, item in items.items():
        if not isinstance(key, str):
            raise TypeError(f"HCL object keys are strings, not {type(key).__name__}")
        pairs.append((quote(key), _literal(item, pad + "  ")))
    width = max(len(key) for key, _ in pairs)
    lines = "".join(f"{pad}  {key.ljust(width)} = {item}\n" for key, item in pairs)
    return "{\n" + lines + pad + "}"


def quote(text: str) -> str:
    """A double-quoted HCL string literal whose value is exactly ``text``."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif "\ud800" <= ch <= "\udfff":
            raise ValueError("a lone surrogate cannot be written as UTF-8")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    # No escape above produces "$", "%" or "{", so these replacements see the text's own
    # sequences only. "$${" and "%%{" are HCL's escapes for a literal "${" and "%{".
    body = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{body}"'


def go_duration(value: timedelta) -> str:
    """A Go ``time.ParseDuration`` string for a non-negative timedelta: 90s -> "1m30s"."""
    ms, rest = divmod(value // timedelta(microseconds=1), 1000)
    if value < timedelta(0) or rest:
        raise ValueError(f"durations are whole milliseconds and not negative: {value!r}")
    if ms % 1000:
        return f"{ms}ms"
    hours, secs = divmod(ms // 1000, 3600)
    mins, secs = divmod(secs, 60)
    text = (
        (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "") + (f"{secs}s" if secs else "")
    )
    return text or "0s"
