"""The private-string search of ``sharing.card`` at the edges of its rules: which values are searched as
tokens of their own (:func:`needs_token`), the joined forms of multi-word values, the cases searched,
candidates that overlap, and blank strings (mutation review of sharing/card.py). Expected answers are read
off the rules in the docstrings and the bytes of each text."""

from __future__ import annotations

import pytest

from gastrodistill.sharing.card import find_strings, needs_token, word_joins


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("123456789012", True),  # all digits, however long
        ("Abcdefghijk", True),  # letters, 11
        ("Abcdefghijkl", False),  # letters, 12: found anywhere
        ("ab-12", True),  # 5 characters
        ("ab-123", False),  # 6
        (" 1002 ", True),  # judged without the spaces around it: all digits
    ],
)
def test_needs_token_at_the_boundaries_of_its_rules(value, token):
    assert needs_token(value) is token


def test_a_token_value_is_not_found_inside_a_longer_run_and_a_longer_one_is():
    text = b"x123456789012x xabcdefghijklx"
    assert find_strings({"c": text}, ["123456789012", "Abcdefghijkl"]) == [("c", 1)]


def test_two_words_are_joined_and_a_value_without_a_letter_is_not():
    assert word_joins("Anna Lee") == {"Anna Lee", "Anna_Lee", "Anna-Lee", "Anna.Lee", "AnnaLee"}
    assert word_joins("12 34") == {"12 34"}  # a number written with a space: no names to join


def test_the_joined_form_of_a_multi_word_value_is_found_inside_a_word():
    """``Anna Lee`` is no short or all-letter value, so none of its forms needs a token of its own:
    ``annalee`` glued into another word is found, as a long mixed id is."""
    assert find_strings({"c": b"run_xannaleex"}, ["Anna Lee"]) == [("c", 0)]


def test_a_capitalised_spelling_of_a_value_given_in_capitals_is_found():
    """``bytes.lower`` leaves non-ASCII capitals as they are: ``Éléonore`` in the text is neither the lower
    (``éléonore``) nor the upper case (``ÉLÉONORE``) of the value as bytes, only its title case."""
    assert find_strings({"c": "site Éléonore".encode()}, ["ÉLÉONORE"]) == [("c", 0)]
    assert find_strings({"c": "site ÉLÉONORE".encode()}, ["éléonore"]) == [("c", 0)]


def test_a_candidate_overlapping_a_refused_one_is_still_judged():
    """In ``xab-ab-ab`` the first ``ab-ab`` touches a letter (no token) and the second, overlapping it,
    stands between ``-`` and the end (a token)."""
    assert find_strings({"c": b"xab-ab-ab"}, ["ab-ab"]) == [("c", 0)]
    assert find_strings({"c": b"xab-ab-abx"}, ["ab-ab"]) == []


def test_blank_strings_are_not_searched_and_hits_keep_their_index():
    blobs = {"card.json": b'{"site": 1002}', "grid.png": b"nothing"}
    assert find_strings(blobs, ["", "  ", "1002", "nothing", "absent"]) == [
        ("card.json", 2),
        ("grid.png", 3),
    ]


def test_an_end_outside_ascii_is_not_guarded():
    """The guard judges the bytes next to a match as ASCII letters and digits only, so only an ASCII end
    is guarded: ``Émile`` glued after a letter is found (erring towards a refusal), ``emile`` is not."""
    text = "dr_xémile_xemile".encode()
    assert find_strings({"c": text}, ["Émile", "Emile"]) == [("c", 0)]


def test_a_match_one_byte_off_in_utf16_is_judged_by_the_character_it_touches():
    """``x1002`` in UTF-16-LE holds the bytes of ``1002`` in UTF-16-BE one byte off, right after the ``x``:
    that ``x`` touches it, so it is no token (mutant: the guard wanted the whole two-byte character before
    it, which is not there, and let it pass)."""
    for encoding in ("utf-16-le", "utf-16-be"):
        assert find_strings({"c": "x1002".encode(encoding)}, ["1002"]) == [], encoding
        assert find_strings({"c": "-1002".encode(encoding)}, ["1002"]) == [("c", 0)], encoding
