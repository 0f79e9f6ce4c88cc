"""The hcl quoting filter: every value means itself in HCL, and nothing else gets through."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

import pygohcl
import pytest

from controller.runtime.nomad.hcl import HCL, RuntimeVar, go_duration, hcl, interpolate

# Sequences that end an HCL string, start an expression or directive, or confuse a reader.
HOSTILE = [
    '"; } job "x" {',
    '${env("HOME")}',
    "${NOMAD_META_build_token}",
    "%{ if true }yes%{ endif }",
    "line1\nline2\r\n\tafter tab",
    'back\\slash \\" \\n \\u0041',
    "$${already} %%{escaped} $$${x} %%%{y}",
    "$",
    "%",
    "{",
    "${",
    "%{",
    "$\n{",
    '}\n}\njob "evil" {\n  group "g" {}\n}\n',
    "<<EOF\nheredoc\nEOF",
    "# not a comment // nor /* this */",
    "ünïcödé 🚀 \u2028\u2029 \u200b\ufeff \u00a0",
    "\x00\x07\x1b[31mred\x7f",
    "`backtick` 'single'",
    "",
]


def roundtrip(value: Any) -> Any:
    return pygohcl.loads(f"value = {hcl(value)}\n")["value"]


@pytest.mark.parametrize("text", HOSTILE)
def test_strings_round_trip_exactly(text: str) -> None:
    assert roundtrip(text) == text
    assert roundtrip([text, text]) == [text, text]
    assert roundtrip({text: text}) == {text: text}


def test_random_strings_round_trip() -> None:
    rng = random.Random(5)
    alphabet = "$%{}\"\\\n\r\t #/*<>`'=,[]()\x00\x1f\x7f\u2028é🚀ab"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert roundtrip(text) == text, repr(text)


def test_scalars_are_bare_literals() -> None:
    assert (hcl(2), hcl(-3), hcl(True), hcl(False), hcl(1.5)) == ("2", "-3", "true", "false", "1.5")
    assert roundtrip(2) == 2 and roundtrip(True) is True and roundtrip(-3) == -3
    assert isinstance(hcl("x"), HCL)


def test_nested_lists_and_maps() -> None:
    value = {"a": [1, "two", {"three": False}], "b": {}, "c": [], "d": ["x" * 50, "y" * 50]}
    assert roundtrip(value) == value
    assert (
        hcl({"k": "v", "long": "w"}, indent=4) == '{\n      "k"    = "v"\n      "long" = "w"\n    }'
    )


@pytest.mark.parametrize(
    "value",
    [None, object(), b"bytes", {"a"}, math.nan, math.inf, "\ud800", {1: "a"}, [None], HCL],
)
def test_anything_else_raises(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        hcl(value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=10), "10s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=5), "5m"),
        (timedelta(hours=1, seconds=1), "1h1s"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_durations_are_go_durations(delta: timedelta, text: str) -> None:
    assert go_duration(delta) == text and hcl(delta) == f'"{text}"'


def test_durations_must_be_whole_milliseconds_and_positive() -> None:
    for bad in (timedelta(microseconds=1), timedelta(seconds=-1)):
        with pytest.raises(ValueError):
            go_duration(bad)


def test_interpolated_keeps_only_the_runtime_references() -> None:
    value = interpolate("http://c/${x}/%{y}/", RuntimeVar("NOMAD_META_build_id"), "/s")
    assert hcl(value) == '"http://c/$${x}/%%{y}/${NOMAD_META_build_id}/s"'
    # A "$" just before a reference must not turn it into the escape "$${".
    assert hcl(interpolate("a$", RuntimeVar("X"))) == '"a\\u0024${X}"'
    # pygohcl evaluates a reference to its source text: literal "a$$", then the reference X.
    assert pygohcl.loads(f"v = {hcl(interpolate('a$$', RuntimeVar('X')))}")["v"] == "a$$X"
    # Literal parts are escaped together: "$" + "{x}" is text, not an interpolation.
    assert hcl(interpolate("$", "{x}")) == '"$${x}"'


@pytest.mark.parametrize("name", ["var.x", "local.y", 'env("HOME")', "a}b", "", "x y", "${x}"])
def test_runtime_vars_are_plain_references(name: str) -> None:
    with pytest.raises(ValueError):
        RuntimeVar(name)
