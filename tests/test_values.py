"""The shared value checks and text forms (utils.values), each against its contract and, for the quoting,
against the parser that reads it back (Hydra's override grammar, OmegaConf)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gastrodistill.utils.values import (
    check_switch,
    human_bytes,
    hydra_quoted,
    is_count,
    is_finite_number,
    listed,
    omegaconf_literal,
)


def test_a_finite_number_is_a_real_int_or_float_and_not_a_bool_a_string_or_an_infinity():
    for value in (0, -3, 1.5, np.float32(2.5), np.int64(4)):
        assert is_finite_number(value), value
    for value in (True, False, "1", None, math.nan, math.inf, -math.inf, np.float64("inf"), 1j, [1]):
        assert not is_finite_number(value), value


def test_a_count_is_an_int_of_at_least_low_and_not_a_bool_or_an_integral_float():
    assert is_count(1) and is_count(7) and not is_count(0) and not is_count(-1)  # low=1 by default
    assert is_count(0, low=0) and is_count(5, low=5) and not is_count(4, low=5)  # low itself counts
    assert not is_count(True) and not is_count(2.0) and not is_count("3")


def test_a_switch_is_a_bool_and_anything_else_is_refused_with_the_callers_error():
    """Hydra keeps ``no`` as a string and ``1`` as an int, both true to ``bool()``: refused, naming the key
    and the value as written (mutants: an int taken, a ValueError instead of the caller's class)."""

    class MyError(Exception):
        pass

    assert check_switch(True, "k") is True and check_switch(False, "k") is False
    for value, shown in (("no", "'no'"), (1, "1"), (0, "0"), (None, "None")):
        with pytest.raises(MyError) as info:
            check_switch(value, "data.augment", MyError)
        assert str(info.value) == f"data.augment must be true or false, got {shown}"
    with pytest.raises(ValueError, match=r"^x must be true or false, got 'off'$"):
        check_switch("off", "x")


def test_one_value_or_a_list_of_them_reads_as_a_list():
    assert listed("distill", str) == ["distill"]  # a string is one name, not its letters
    assert listed(["distill", "evaluate"], str) == ["distill", "evaluate"]
    assert listed(OmegaConf.create(["soft", "hard"]), str) == ["soft", "hard"]  # as the config holds it
    assert listed(0.1, (int, float)) == [0.1] and listed((0.1, 0.2), (int, float)) == [0.1, 0.2]


@pytest.mark.parametrize(
    "text", ['say "hi"', "site B (2), it's résumé", "a=b,c", "[x]", "/tmp/x y/z", 'ends with "']
)
def test_a_hydra_quoted_text_parses_back_as_itself(text):
    """Hydra's own parser reads the quoted override's value back whole (mutants: the inner quote unescaped,
    single quotes, which the ' in some texts would end)."""
    (override,) = OverridesParser.create().parse_overrides([f"key={hydra_quoted(text)}"])
    assert override.value() == text
    assert hydra_quoted('a "b"') == '"a \\"b\\""'


@pytest.mark.parametrize(
    "text", ["/tmp/x${oc.env:HOME}", "plain/path", "a\\${b}", "a\\\\${b}", "${x}${y}", "no $ {brace}"]
)
def test_an_omegaconf_literal_reads_back_as_the_text_itself(text):
    """OmegaConf reads ``\\${`` as a literal ``${`` and ``\\\\${`` as a backslash then an interpolation: the
    literal doubles the backslashes before each ``${`` and escapes it (mutants: neither or one of the two)."""
    assert OmegaConf.create({"v": omegaconf_literal(text)}).v == text


def test_byte_counts_in_powers_of_1024_with_the_unit_that_keeps_them_below_1024():
    cases = {
        0: "0 B",
        1023: "1023 B",
        1024: "1.0 KB",  # 1024 is no longer bytes (mutant: <= 1024)
        1536: "1.5 KB",
        1000 * 1024: "1000.0 KB",  # 1,024,000 bytes: 1000 KiB, not 1.0 MB (mutant: powers of 1000)
        3 * 1024**3: "3.0 GB",
        1024**5: "1024.0 TB",  # the last unit takes whatever is left
    }
    assert {n: human_bytes(n) for n in cases} == cases
    assert human_bytes(int(16.3 * 1024**4), iec=True) == "16.3 TiB"
    assert human_bytes(500, iec=True) == "500 B" and human_bytes(2048, iec=True) == "2.0 KiB"
