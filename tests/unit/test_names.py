from __future__ import annotations

import pytest

from controller.errors import InvalidParams
from controller.names import check_app_name, check_build_id, check_process_type


@pytest.mark.parametrize("name", ["abc", "hello", "my-app-2", "a" * 30, "a1b"])
def test_valid_app_names(name: str) -> None:
    assert check_app_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "a" * 31,
        "Hello",
        "1app",
        "-app",
        "app-",
        "app_x",
        "app.x",
        "ap p",
        "app/../x",
        "app;rm",
        "a--b",
        "émoji",
        "app\n",
        None,
        42,
    ],
)
def test_invalid_app_names_say_the_rule(name: object) -> None:
    with pytest.raises(InvalidParams) as err:
        check_app_name(name)
    assert "app name" in err.value.message


@pytest.mark.parametrize("name", ["api", "git", "yurt", "admin"])
def test_reserved_app_names(name: str) -> None:
    with pytest.raises(InvalidParams, match="reserved"):
        check_app_name(name)


def test_process_types() -> None:
    assert check_process_type("web") == "web"
    assert check_process_type("worker_2-x") == "worker_2-x"
    for bad in ("", "a" * 64, "we b", "web:", "wéb"):
        with pytest.raises(InvalidParams):
            check_process_type(bad)


def test_build_ids() -> None:
    assert check_build_id("01M8C1A42NQX9395Q18HS1HVAJ")
    for bad in (
        "",
        "x",
        "../../etc/passwd",
        "01M8C1A42NQX9395Q18HS1HVAJX",
        "01m8c1a42nqx9395q18hs1hvaj",
    ):
        with pytest.raises(InvalidParams):
            check_build_id(bad)
