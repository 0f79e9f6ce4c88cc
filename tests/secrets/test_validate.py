"""The rules for config var names and values (pure functions, no server)."""

from __future__ import annotations

import pytest

from controller.errors import InvalidConfig
from controller.secrets.validate import (
    MAX_CONFIG_BYTES,
    MAX_VALUE_BYTES,
    check_change,
    check_config_size,
    config_size,
)

SECRET = "hunter2-do-not-show"


@pytest.mark.parametrize(
    ("set_values", "unset", "rule"),
    [
        ({"1ABC": SECRET}, [], "Invalid config var name '1ABC'"),
        ({"A-B": SECRET}, [], "Invalid config var name 'A-B'"),
        ({"": SECRET}, [], "Invalid config var name ''"),
        ({"ABC\n": SECRET}, [], "Invalid config var name"),
        ({"ÄBC": SECRET}, [], "Invalid config var name"),
        ({f"KEY={SECRET}": "x"}, [], "Invalid config var name 'KEY=...'"),
        ({"PORT": SECRET}, [], "The config var PORT is reserved"),
        ({"DYNO": SECRET}, [], "The config var DYNO is reserved"),
        ({"HOME": SECRET}, [], "The config var HOME is reserved"),
        ({"YURT_APP": SECRET}, [], "The config var YURT_APP is reserved"),
        ({}, ["PORT"], "The config var PORT is reserved"),
        ({}, ["YURT_RELEASE"], "The config var YURT_RELEASE is reserved"),
        ({}, ["bad key"], "Invalid config var name 'bad key'"),
        ({"KEY": SECRET + "\0"}, [], "The value of KEY contains a NUL byte"),
        ({"KEY": SECRET + "\udc80"}, [], "The value of KEY is not valid UTF-8"),
        ({"KEY": 42}, [], "The value of KEY must be a string"),
        ({"KEY": None}, [], "The value of KEY must be a string"),
        ({"KEY": SECRET + "x" * MAX_VALUE_BYTES}, [], "The value of KEY is 32787 bytes"),
        ({"KEY": SECRET}, ["KEY"], "KEY cannot be both set and unset"),
    ],
)
def test_each_rule_names_the_key_and_hides_the_value(
    set_values: dict[str, object], unset: list[str], rule: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        check_change(set_values, unset)
    err = caught.value
    assert (err.status, err.id) == (422, "invalid_config")
    assert rule in err.message
    assert SECRET not in err.message
    assert SECRET not in str(err)


def test_valid_change_passes() -> None:
    values = {
        "DATABASE_URL": "postgres://u:p@h/db",
        "_private": "",
        "MULTI": "line 1\nline 2\n",
        "UNICODE": "café ☕",
        "port": "lowercase names are not reserved",
        "MAX": "é" * (MAX_VALUE_BYTES // 2),  # 2 bytes each: exactly the limit
    }
    to_set, to_unset = check_change(values, ["OLD", "OLD", "Other_1"])
    assert to_set == values
    assert to_unset == ("OLD", "Other_1")


def test_size_counts_encoded_keys_and_values() -> None:
    assert config_size({"AB": "é"}) == 4
    fits = {"K": "x" * (MAX_CONFIG_BYTES - 1)}
    check_config_size(fits)
    with pytest.raises(InvalidConfig) as caught:
        check_config_size({**fits, "L": "y"}, ["L"])
    assert "Setting L would make the app's config 65538 bytes" in caught.value.message
    assert "64 KiB" in caught.value.message
