"""The fuzz harness's comparison fails on every kind of disagreement it exists to catch."""

from __future__ import annotations

import pytest

pytest.importorskip("atheris")

from tests.fuzz._harness import compare


class Refused(ValueError):
    pass


def refuse(arg: int) -> int:
    raise Refused(f"no {arg}")


def double(arg: int) -> int:
    return arg * 2


def hand_over(arg: int) -> int:
    raise KeyError(arg)


def test_agreeing_implementations_give_the_twins_outcome() -> None:
    assert compare("f", 2, twin=double, compiled=double, fast_path=hand_over, error=Refused) == 4
    assert compare("f", 2, twin=refuse, compiled=refuse, fast_path=hand_over, error=Refused) == ("Refused", "no 2")


def test_a_different_value_or_error_text_fails() -> None:
    with pytest.raises(AssertionError, match="compiled f gave 6"):
        compare("f", 2, twin=double, compiled=lambda a: a * 3, fast_path=hand_over, error=Refused)
    with pytest.raises(AssertionError, match="the twin"):
        compare("f", 2, twin=refuse, compiled=lambda a: (_ for _ in ()).throw(Refused("other")),
                fast_path=hand_over, error=Refused)


def test_a_fast_path_accepting_what_the_twin_refuses_fails() -> None:
    with pytest.raises(AssertionError, match="fast path"):
        compare("f", 2, twin=refuse, compiled=refuse, fast_path=double, error=Refused)


def test_an_undocumented_exception_or_a_c_level_error_propagates() -> None:
    with pytest.raises(KeyError):
        compare("f", 2, twin=hand_over, compiled=hand_over, fast_path=hand_over, error=Refused)

    def c_bug(arg: int) -> int:
        raise SystemError("error return without exception set")

    with pytest.raises(SystemError):
        compare("f", 2, twin=double, compiled=double, fast_path=c_bug, error=Refused)
