"""``data.errors``: an exception's text naming a file as the user gave it, the DataInputError's lines, and the
hint for a missing relative path."""

from __future__ import annotations

from pathlib import Path

from gastrodistill.data.errors import DataInputError, ManifestError, error_text, relative_path_hint


def test_error_text_names_the_file_as_given_whichever_path_the_exception_quotes(tmp_path, monkeypatch):
    """A library may quote the path it was given or the resolved absolute one: both become ``where``, and the
    text keeps the exception's type (mutants: either replacement dropped, the type name dropped)."""
    monkeypatch.chdir(tmp_path)
    path = Path("images") / "x.png"
    given = OSError(f"cannot read {path}: truncated")
    assert (
        error_text(given, path, "manifest.csv line 2")
        == "OSError: cannot read manifest.csv line 2: truncated"
    )
    absolute = OSError(f"cannot read {tmp_path / path}: truncated")
    assert error_text(absolute, path, "manifest.csv line 2") == (
        "OSError: cannot read manifest.csv line 2: truncated"
    )


def test_error_text_of_an_exception_without_a_message_is_its_type_alone():
    assert error_text(ValueError(), Path("x.png"), "x.png") == "ValueError"


def test_a_data_input_error_lists_its_problems_under_a_header_or_joins_them_on_one_line():
    listed = ManifestError(["line 2: bad", "line 3: worse"], header="manifest.csv is invalid (2 problem(s)):")
    assert str(listed) == "manifest.csv is invalid (2 problem(s)):\n  - line 2: bad\n  - line 3: worse"
    assert listed.problems == ["line 2: bad", "line 3: worse"]
    assert str(DataInputError(["a", "b"])) == "a; b"
    one = DataInputError("data.image_size must be positive")
    assert one.problems == ["data.image_size must be positive"] and str(one) == one.problems[0]


def test_an_absolute_path_gets_no_relative_path_hint(tmp_path):
    assert relative_path_hint(tmp_path / "absent", "data.root") == ""


def test_a_missing_relative_path_outside_hydra_is_said_to_be_read_from_the_current_folder(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    hint = relative_path_hint(Path("data") / "tiny", "data.root")
    assert hint == (
        f" (data/tiny is relative, so it is read from the folder the command runs in, {tmp_path}: run the "
        "command from your project's folder, or set GASTRODISTILL_ROOT=<project folder> (paths.root_dir), "
        "where every default data and output path starts, or give an absolute path)"
    )
