"""manifest.csv validation: each bad input reported with its line and what to fix, all in one error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gastric_testdata import image_pixels, make_data, write_manifest, write_png

from gastrodistill.data.errors import ManifestError
from gastrodistill.data.manifest import load_manifest, validate_files
from gastrodistill.data.tiling import Geometry

GEOM = Geometry(32, 8)


def refusal(data_root, rows: list[dict]) -> ManifestError:
    """The ManifestError of DATA_ROOT with ``rows`` written as its manifest (it must be refused)."""
    write_manifest(data_root, rows)
    with pytest.raises(ManifestError) as info:
        load_manifest(data_root)
    return info.value


def rows_of(root):
    import csv

    with open(root / "manifest.csv") as f:
        return list(csv.DictReader(f))


def test_valid_manifest_loads(data_root):
    m = load_manifest(data_root)
    assert len(m.records) == 16 and m.has_split
    assert m.records[0].line == 2
    assert m.patients()["A1"] == "gastritis"
    assert m.manifest_splits()["C1"] == "test"
    sizes = validate_files(m, GEOM, progress=False)
    assert set(sizes.values()) == {(100, 90)}


def test_all_row_problems_are_listed_together(data_root, tmp_path):
    rows = rows_of(data_root)
    rows[0]["image"] = "images/nope.png"  # line 2: missing file
    rows[1]["diagnosis"] = "ulcer"  # line 3: unknown diagnosis
    rows[3]["split"] = "test"  # line 5: patient A2 now in train and test
    rows[4]["image"] = "../outside.png"  # line 6: leaves DATA_ROOT
    (tmp_path / "outside.png").write_bytes(b"x")
    rows[5]["image"] = str(data_root / "images" / "B1_0.png")  # line 7: absolute path
    rows[6]["mask"] = "masks/missing.png"  # line 8: missing mask
    rows[7]["split"] = "validation"  # line 9: bad split value
    error = refusal(data_root, rows)
    msg = str(error)
    assert "line 2: image file 'images/nope.png' not found" in msg
    assert "line 3: unknown diagnosis 'ulcer'; use one of non-gastritis, gastritis" in msg
    assert "patient 'A2' is in splits ['test', 'train']" in msg and "[4, 5]" in msg
    assert "line 6: image '../outside.png' leaves DATA_ROOT" in msg
    assert "line 7: image" in msg and "absolute path" in msg
    assert "line 8: mask file 'masks/missing.png' not found" in msg
    assert "line 9: split 'validation' must be 'train' or 'test'" in msg
    assert len(error.problems) == 7


def test_an_empty_patient_id_and_one_image_under_two_spellings_are_refused(data_root):
    """An empty patient_id made one patient "" of every such image; ``./images/x.png`` and ``images/x.png``
    are one file listed twice."""
    rows = rows_of(data_root)
    rows[0]["patient_id"] = ""  # line 2
    rows.append({**rows[2], "image": "./" + rows[2]["image"]})  # the last line repeats line 4's image
    error = refusal(data_root, rows)
    msg = str(error)
    assert "line 2: empty patient_id; every image needs its patient's id" in msg
    assert f"lines [4, {len(rows) + 1}]: image {rows[2]['image']!r} listed more than once" in msg


def test_diagnoses_in_any_case_and_spaces_after_commas_are_read(data_root):
    rows = rows_of(data_root)
    columns = list(rows[0])
    text = (
        ", ".join(columns)
        + "\n"
        + "".join(", ".join(r[c].title() if c == "diagnosis" else r[c] for c in columns) + "\n" for r in rows)
    )
    (data_root / "manifest.csv").write_text(text)
    m = load_manifest(data_root)
    assert [r.diagnosis for r in m.records] == [r["diagnosis"] for r in rows]  # Gastritis -> gastritis
    assert [r.image for r in m.records] == [r["image"] for r in rows]


def test_symlink_escaping_root_is_rejected(data_root, tmp_path):
    outside = write_png(tmp_path / "elsewhere" / "x.png", image_pixels(100, 90, 5))
    (data_root / "images" / "link.png").symlink_to(outside)
    rows = rows_of(data_root)
    rows[0]["image"] = "images/link.png"
    write_manifest(data_root, rows)
    with pytest.raises(ManifestError, match=r"line 2: image 'images/link.png' leaves DATA_ROOT"):
        load_manifest(data_root)


def test_patient_with_two_diagnoses_and_duplicate_image(data_root):
    rows = rows_of(data_root)
    rows[1]["diagnosis"] = "non-gastritis"  # A1's second image
    rows.append(dict(rows[2]))
    error = refusal(data_root, rows)
    msg = str(error)
    assert "patient 'A1' has diagnoses ['gastritis', 'non-gastritis']" in msg
    assert "image 'images/A2_0.png' listed more than once" in msg and "[4, 18]" in msg


def test_patient_ids_that_differ_only_in_case_are_refused(data_root):
    """'A1' and 'a1' were two patients, so a seeded split by patient could put one patient's images in train
    and test (a breaker's finding, left open in the fourteenth session). Refused naming every line."""
    rows = rows_of(data_root)
    assert rows[0]["patient_id"] == rows[1]["patient_id"] == "A1"
    rows[1]["patient_id"] = "a1"
    error = refusal(data_root, rows)
    msg = str(error)
    assert "lines [2, 3]: patient ids 'A1', 'a1' differ only in letter case; give one patient one id" in msg
    assert len(error.problems) == 1
    rows[1]["patient_id"] = "A1"
    write_manifest(data_root, rows)
    assert len(load_manifest(data_root).patients()) == len({r["patient_id"] for r in rows})


def test_missing_columns_and_empty_manifest(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "manifest.csv").write_text("img,patient,diagnosis\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['image', 'patient_id'\]"):
        load_manifest(root)
    (root / "manifest.csv").write_text("image,patient_id,diagnosis\n")
    with pytest.raises(ManifestError, match="no rows"):
        load_manifest(root)
    with pytest.raises(ManifestError, match="is not a folder") as absent:
        load_manifest(tmp_path / "absent")
    # both ways out: the user's own data, or the synthetic collection that nothing has written yet
    said = str(absent.value)
    assert "set data.root (or paths.data_root)" in said and "gastrodistill-generate" in said
    (root / "manifest.csv").unlink()
    with pytest.raises(ManifestError, match=r"manifest\.csv not found"):
        load_manifest(root)


def test_file_problems_listed_with_their_lines(data_root):
    # line 2: RGB image; line 3: truncated PNG; line 4: mask of another size; line 5: too small for a patch
    from PIL import Image

    Image.fromarray(np.zeros((100, 90, 3), np.uint8)).save(data_root / "images" / "A1_0.png")
    p = data_root / "images" / "A1_1.png"
    p.write_bytes(p.read_bytes()[:-2000])
    write_png(data_root / "masks" / "A2_0.png", np.zeros((100, 91), np.uint8))
    write_png(data_root / "images" / "A2_1.png", image_pixels(20, 90, 3))
    m = load_manifest(data_root)
    with pytest.raises(ManifestError) as info:
        validate_files(m, GEOM, progress=False)
    msg = str(info.value)
    assert len(info.value.problems) == 4
    assert "line 2 (image 'images/A1_0.png')" in msg and "not 2-D grayscale" in msg
    assert "line 3 (image 'images/A1_1.png')" in msg and "truncated" in msg
    assert (
        "line 4 (image 'images/A2_0.png'): mask 'masks/A2_0.png' is 100x91 px but the image is 100x90" in msg
    )
    assert "line 5 (image 'images/A2_1.png')" in msg and "smaller than the 32 px patch" in msg


def test_manifest_without_split_or_mask_columns(tmp_path):
    root = make_data(tmp_path / "d", with_split=False)
    m = load_manifest(root)
    assert not m.has_split and m.manifest_splits() is None


def test_split_column_needs_both_splits(make_root):
    root = make_root(patients={"A": ("gastritis", "train"), "B": ("non-gastritis", "train")})
    with pytest.raises(ManifestError, match="no image has split 'test'"):
        load_manifest(root)


def _manifest_bytes(root) -> bytes:
    return (root / "manifest.csv").read_bytes()


@pytest.mark.parametrize(
    ("encode", "expect"),
    [
        # Windows-1252 / Latin-1: patient B1 (lines 8, 9) renamed with an umlaut, the byte 0xfc
        (lambda t: t.replace("B1,", "M\u00fcller,").encode("cp1252"), "line 8: byte 0xfc is not UTF-8"),
        (lambda t: t.encode("utf-16"), "is saved as UTF-16"),  # with a byte-order mark
        (lambda t: t.encode("utf-32"), "is saved as UTF-32"),
        (lambda t: t.encode("utf-16-le"), "line 1: holds a NUL byte"),  # without one: NUL in every character
    ],
    ids=["cp1252", "utf-16", "utf-32", "utf-16-no-bom"],
)
def test_a_manifest_not_in_utf8_is_refused_naming_the_file_and_what_to_do(data_root, encode, expect):
    text = _manifest_bytes(data_root).decode("utf-8")
    (data_root / "manifest.csv").write_bytes(encode(text))
    with pytest.raises(ManifestError) as info:
        load_manifest(data_root)
    msg = str(info.value)
    assert msg.startswith(str(data_root / "manifest.csv")) and expect in msg, msg
    assert "save it as UTF-8" in msg


def test_a_nul_byte_in_an_image_path_is_refused_naming_the_line(data_root):
    lines = _manifest_bytes(data_root).split(b"\n")
    lines[3] = lines[3].replace(b"images/A2_0.png", b"images/A2\x00_0.png")  # line 4
    (data_root / "manifest.csv").write_bytes(b"\n".join(lines))
    with pytest.raises(ManifestError, match=r"manifest\.csv line 4: holds a NUL byte") as info:
        load_manifest(data_root)
    assert "remove the byte" in str(info.value)


@pytest.mark.parametrize("disk,manifest", [("NFC", "NFD"), ("NFD", "NFC")])
def test_a_path_in_the_other_unicode_form_is_named_as_such(data_root, disk, manifest):
    """A manifest written on macOS (NFD) for files named in NFC: "not found" quoting a path that prints
    exactly like the real one; the message now says which form the file's name has."""
    import unicodedata

    name = "images/Müller_0.png"
    (data_root / unicodedata.normalize(disk, name)).write_bytes(
        (data_root / "images" / "A1_0.png").read_bytes()
    )
    rows = rows_of(data_root)
    rows[0]["image"] = unicodedata.normalize(manifest, name)
    error = refusal(data_root, rows)
    msg = str(error)
    assert "line 2: image file" in msg and "not found" in msg
    assert f"exists with its accented letters in Unicode {disk} form" in msg and f"with {disk} text" in msg


def _backslashed(rows: list[dict]) -> list[dict]:
    """The rows as a manifest exported on Windows writes them: ``images\\A1_0.png``."""
    return [{**r, "image": r["image"].replace("/", "\\"), "mask": r["mask"].replace("/", "\\")} for r in rows]


def test_backslashes_in_manifest_paths_are_read_as_slashes(data_root):
    """A manifest exported on Windows (``dicom\\x.dcm``) gave one "not found" per path, quoting doubled
    backslashes; a ``\\`` now separates folders as ``/`` does, for images and masks."""
    slashed = load_manifest(data_root)
    write_manifest(data_root, _backslashed(rows_of(data_root)))
    m = load_manifest(data_root)
    assert [(r.image, r.mask) for r in m.records] == [(r.image, r.mask) for r in slashed.records]
    assert m.records[0].image == "images/A1_0.png"
    assert m.records[0].written == ("images\\A1_0.png", "masks\\A1_0.png")  # for the audit's search
    assert slashed.records[0].written == ()
    assert validate_files(m, GEOM, progress=False) == validate_files(slashed, GEOM, progress=False)


def test_backslash_paths_are_refused_when_absolute_leaving_the_root_or_listed_twice(data_root, tmp_path):
    rows = rows_of(data_root)
    (tmp_path / "outside.png").write_bytes(b"x")
    rows[0]["image"] = "C:\\data\\x.dcm"  # line 2: a Windows absolute path
    rows[1]["image"] = "..\\outside.png"  # line 3: leaves DATA_ROOT
    rows[2]["image"] = "\\\\server\\share\\x.dcm"  # line 4: a network (UNC) path
    rows[3]["mask"] = "C:masks\\A2_1.png"  # line 5: a path on drive C: (relative to its current folder)
    rows.append({**rows[4], "image": rows[4]["image"].replace("/", "\\")})  # repeats line 6's image
    error = refusal(data_root, rows)
    msg = str(error)
    assert "line 2: image 'C:/data/x.dcm' is an absolute path; write it relative to DATA_ROOT" in msg
    assert "line 3: image '../outside.png' leaves DATA_ROOT" in msg
    assert "line 4: image '//server/share/x.dcm' is an absolute path" in msg
    assert "line 5: mask 'C:masks/A2_1.png' is an absolute path" in msg
    assert "lines [6, 18]: image 'images/A3_0.png' listed more than once; keep one row" in msg
    assert len(error.problems) == 5


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolons (';')"), ("\t", "tabs")])
def test_a_manifest_separated_by_semicolons_or_tabs_is_named_as_such(data_root, sep, name):
    """European Excel saves "CSV" with semicolons, and some exports are tab-separated: the error was
    ``missing column(s) ['image', 'patient_id', 'diagnosis'] ... found ['image;patient_id;...']``."""
    text = _manifest_bytes(data_root).decode("utf-8").replace(",", sep)
    (data_root / "manifest.csv").write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(data_root)
    assert str(info.value) == (
        f"{data_root / 'manifest.csv'}: the header is separated by {name}, not commas; save it as "
        "comma-separated CSV UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; LibreOffice: field delimiter ',' "
        "and character set 'Unicode (UTF-8)')"
    )


def test_a_val_split_in_the_manifest_says_where_validation_patients_come_from(data_root):
    """``val`` is refused, as before, and the message now says how the validation split is made."""
    rows = rows_of(data_root)
    rows[0]["split"] = rows[1]["split"] = "val"  # patient A1, lines 2 and 3
    rows[2]["split"] = "holdout"  # line 4: no advice about validation
    write_manifest(data_root, rows)
    with pytest.raises(ManifestError) as info:
        load_manifest(data_root)
    problems = info.value.problems
    assert problems[0] == (
        "manifest.csv line 2: split 'val' must be 'train' or 'test' (or drop the split column for a seeded "
        "split by patient); the validation patients are drawn from the 'train' patients (data.val_fraction "
        "of each diagnosis, seeded by data.split_seed): mark them 'train'"
    )
    assert problems[2].startswith("manifest.csv line 4: split 'holdout' must be")
    assert "val_fraction" not in problems[2]
    # what the message says is how the split is made: data.val_fraction of the train patients become val
    from omegaconf import OmegaConf

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.data.splits import assign_splits

    conf = OmegaConf.load(f"{CONF_DIR}/data/gastric.yaml")
    assert {"val_fraction", "split_seed"} <= set(conf)
    split = assign_splits(
        {"A": "gastritis", "B": "gastritis", "C": "gastritis"},
        {"A": "train", "B": "train", "C": "test"},
        val_fraction=0.5,
    )
    assert sorted(split.values()) == ["test", "train", "val"]


def _header_and_lines(root):
    lines = _manifest_bytes(root).decode("utf-8").splitlines()
    return lines[0], lines[1:]


def _refusal_of_text(root, text: str) -> ManifestError:
    (root / "manifest.csv").write_text(text)
    with pytest.raises(ManifestError) as info:
        load_manifest(root)
    return info.value


def test_line_numbers_count_the_blank_lines_of_the_file(data_root):
    """csv skips a blank line but the message's line is the file's (mutant: the row's index + 2)."""
    header, lines = _header_and_lines(data_root)
    lines[2] = lines[2].replace("gastritis", "ulcer")  # the third row, line 5 once a blank line is inserted
    error = _refusal_of_text(data_root, "\n".join([header, lines[0], "", *lines[1:]]) + "\n")
    assert error.problems == [
        "manifest.csv line 5: unknown diagnosis 'ulcer'; use one of non-gastritis, gastritis"
    ]


def test_split_values_in_any_case_are_read_and_every_validation_spelling_is_explained(data_root):
    rows = rows_of(data_root)
    for r in rows:
        r["split"] = r["split"].upper()  # TRAIN, TEST
    write_manifest(data_root, rows)
    assert load_manifest(data_root).manifest_splits() == {r["patient_id"]: r["split"].lower() for r in rows}
    rows[0]["split"], rows[1]["split"] = "Valid", "validation"  # patient A1, lines 2 and 3
    problems = refusal(data_root, rows).problems
    assert [p.split(":")[0] for p in problems] == ["manifest.csv line 2", "manifest.csv line 3"]
    assert all(p.endswith("seeded by data.split_seed): mark them 'train'") for p in problems), problems


def test_at_most_fifty_problems_are_listed_and_the_others_counted():
    """53 problems: 50 listed, then '... and 3 more problem(s)', the header counting all 53 (not the 51 lines
    shown); 50: all listed."""
    from gastrodistill.data.manifest import raise_if

    with pytest.raises(ManifestError) as info:
        raise_if([f"problem {i}" for i in range(53)], "manifest.csv is invalid")
    assert info.value.problems == [f"problem {i}" for i in range(50)] + ["... and 3 more problem(s)"]
    assert str(info.value).startswith("manifest.csv is invalid (53 problem(s)):\n  - problem 0\n")
    with pytest.raises(ManifestError) as info:
        raise_if([f"problem {i}" for i in range(50)], "h")
    assert info.value.problems == [f"problem {i}" for i in range(50)]
    raise_if([], "h")  # nothing to say: no error


def test_an_empty_image_value_and_a_folder_as_image_are_named_as_such(data_root):
    rows = rows_of(data_root)
    rows[0]["image"] = ""  # line 2
    rows[1]["image"] = "images"  # line 3: a folder, not a file
    rows[2]["diagnosis"] = "gastritis-"  # line 4
    problems = refusal(data_root, rows).problems
    assert problems == [
        "manifest.csv line 2: empty 'image' value; give a path relative to DATA_ROOT",
        "manifest.csv line 3: image file 'images' not found under DATA_ROOT; fix the path or add the file",
        "manifest.csv line 4: unknown diagnosis 'gastritis-'; use one of non-gastritis, gastritis",
    ]


def test_a_relative_data_root_is_read_from_the_current_folder(data_root, monkeypatch):
    """The paths are checked against the resolved root (mutant: against the root as given, which no
    resolved path of a relative root lies in)."""
    monkeypatch.chdir(data_root.parent)
    m = load_manifest(data_root.name)
    assert len(m.records) == 16 and m.root == Path(data_root.name)


def test_rows_with_an_empty_patient_id_are_not_one_patient_with_two_diagnoses(data_root):
    """Each empty id is its own problem; "" is no patient whose diagnoses or splits could disagree."""
    rows = rows_of(data_root)
    rows[0]["patient_id"] = rows[-1]["patient_id"] = ""  # lines 2 and 17: gastritis/train, non-gastritis/test
    problems = refusal(data_root, rows).problems
    assert problems == [
        "manifest.csv line 2: empty patient_id; every image needs its patient's id",
        "manifest.csv line 17: empty patient_id; every image needs its patient's id",
    ]


def test_patient_ids_equal_once_case_folded_are_refused_with_their_lines_in_order(data_root):
    """'STRAUSS' and 'Strauß' fold alike (str.lower keeps the ß); the lines are sorted whatever the order
    of the spellings (here A1 at lines 2, 3, 5 and a1 at line 4)."""
    original = rows_of(data_root)
    rows = [dict(r) for r in original]
    rows[2]["patient_id"], rows[3]["patient_id"] = "a1", "A1"  # A2's lines 4 and 5
    problems = refusal(data_root, rows).problems
    assert problems == [
        "manifest.csv lines [2, 3, 4, 5]: patient ids 'A1', 'a1' differ only in letter case; give one "
        "patient one id (the split is by patient id, so one patient's images could land in both train and "
        "test), or ids that differ otherwise for different patients"
    ]
    rows = [
        {**r, "patient_id": {"A1": "Strauß", "A2": "STRAUSS"}.get(r["patient_id"], r["patient_id"])}
        for r in original
    ]
    assert (
        refusal(data_root, rows)
        .problems[0]
        .startswith(
            "manifest.csv lines [2, 3, 4, 5]: patient ids 'Strauß', 'STRAUSS' differ only in letter case"
        )
    )


def test_a_split_column_without_train_rows_is_refused_naming_the_split(data_root):
    """Both splits are checked (mutant: only 'test' was)."""
    rows = [{**r, "split": "test"} for r in rows_of(data_root)]
    assert refusal(data_root, rows).problems == [
        "manifest.csv: no image has split 'train'; every split needs patients"
    ]


def test_a_missing_split_is_named_beside_a_duplicated_row(data_root):
    """Every problem is collected: a repeated row did hide the missing 'test' split (it was checked only
    when no other consistency problem was found)."""
    rows = [{**r, "split": "train"} for r in rows_of(data_root)]
    assert refusal(data_root, rows + rows[:1]).problems == [
        f"manifest.csv lines [2, {len(rows) + 2}]: image 'images/A1_0.png' listed more than once; "
        "keep one row",
        "manifest.csv: no image has split 'test'; every split needs patients",
    ]


def test_spaces_around_header_names_and_values_are_dropped_and_extra_values_ignored(data_root):
    """``image , patient_id`` and ``images/A1_0.png ,`` read as written without the spaces (csv drops only the
    spaces after a comma); a row with a value more than the header has is read, the extra value ignored."""
    expected = [
        (r["image"], r["patient_id"], r["diagnosis"], r["split"], r["mask"]) for r in rows_of(data_root)
    ]
    header, lines = _header_and_lines(data_root)
    padded = [" , ".join(line.split(",")) for line in [header, *lines]]
    padded[1] += " , an extra value"
    # a quoted value after a space, with a comma in it: csv sees the quote only once the space is skipped
    padded[2] = padded[2].replace(" , A1 , ", ' , "A, 1" , ')
    expected[1] = (*expected[1][:1], "A, 1", *expected[1][2:])
    (data_root / "manifest.csv").write_text("\n".join(padded) + "\n")
    m = load_manifest(data_root)
    assert [(r.image, r.patient_id, r.diagnosis, r.split, r.mask) for r in m.records] == expected
    assert m.patients() == {pid: diagnosis for _, pid, diagnosis, _, _ in expected}


def test_a_split_column_without_a_mask_column_is_a_split_and_empty_masks_are_none(data_root):
    rows = rows_of(data_root)
    write_manifest(data_root, rows, ["image", "patient_id", "diagnosis", "split"])
    m = load_manifest(data_root)
    assert m.has_split and m.manifest_splits() == {r["patient_id"]: r["split"] for r in rows}
    assert {r.mask for r in m.records} == {None}
    rows[0]["mask"] = ""  # an empty cell of a mask column: no mask either
    write_manifest(data_root, rows)
    assert load_manifest(data_root).records[0].mask is None


def test_patch_labels_path_is_the_file_when_there_is_one(data_root):
    m = load_manifest(data_root)
    assert m.patch_labels_path is None
    (data_root / "patch_labels.csv").write_text("image,row,col,label\n")
    assert m.patch_labels_path == data_root / "patch_labels.csv"


def test_a_bilevel_mask_is_accepted_and_a_sideways_mask_is_named_as_such(data_root):
    """A 1-bit PNG mask is probed as a mask (mutant: probed as an image, which refuses mode '1'); a mask of
    the image's size transposed says it is sideways."""
    from PIL import Image

    Image.fromarray(np.ones((100, 90), bool)).save(data_root / "masks" / "A1_0.png")
    write_png(data_root / "masks" / "A1_1.png", np.zeros((90, 100), np.uint8))
    m = load_manifest(data_root)
    with pytest.raises(ManifestError) as info:
        validate_files(m, GEOM, progress=False)
    assert info.value.problems == [
        "manifest.csv line 3 (image 'images/A1_1.png'): mask 'masks/A1_1.png' is 90x100 px but the image is "
        "100x90 px; the two sizes differ only by a transpose: one of the files is stored sideways (turned by "
        "90 degrees) without an EXIF/TIFF Orientation tag that says so; rotate that file upright instead of "
        "resizing (a resize would squash it and keep it sideways)"
    ]


def test_check_all_lists_row_and_file_problems_once_each(data_root):
    """A missing image is the row's problem alone (the file check skips it, mutant: probed again), a truncated
    one the file check's, in one error."""
    from gastrodistill.data.manifest import check_all

    rows = rows_of(data_root)
    rows[0]["image"] = "images/nope.png"  # line 2
    write_manifest(data_root, rows)
    p = data_root / "images" / "A1_1.png"  # line 3
    p.write_bytes(p.read_bytes()[:-2000])
    with pytest.raises(ManifestError) as info:
        check_all(data_root, GEOM, progress=False)
    problems = info.value.problems
    assert str(info.value).startswith(f"{data_root / 'manifest.csv'} is invalid (2 problem(s)):")
    assert problems[0] == (
        "manifest.csv line 2: image file 'images/nope.png' not found under DATA_ROOT; fix the path or add "
        "the file"
    )
    assert (
        problems[1].startswith("manifest.csv line 3 (image 'images/A1_1.png'): ")
        and "truncated" in problems[1]
    )
