"""Patch labels from stomach masks and from patch_labels.csv, and the errors for missing/bad labels."""

from __future__ import annotations

import numpy as np
import pytest

from gastrodistill.data.errors import PatchLabelError
from gastrodistill.data.labelling import (
    GASTRITIS,
    IRRELEVANT,
    NON_GASTRITIS,
    check_coverage,
    label_image,
    labels_from_mask,
    load_patch_labels,
)
from gastrodistill.data.manifest import load_manifest, validate_files
from gastrodistill.data.tiling import Geometry, tile_positions

GEOM = Geometry(32, 8)


def test_mask_fraction_against_threshold():
    mask = np.zeros((100, 90), dtype=bool)
    mask[:, :45] = True  # left half is stomach
    pos = tile_positions(100, 90, 32, 8)
    for diagnosis, positive in (("gastritis", GASTRITIS), ("non-gastritis", NON_GASTRITIS)):
        labels = labels_from_mask(mask, pos, 32, 0.5, diagnosis)
        for (r, c), lab in zip(pos, labels, strict=True):
            inside = sum(1 for x in range(c, c + 32) if x < 45) / 32  # share of stomach columns
            assert lab == (positive if inside >= 0.5 else IRRELEVANT), (r, c, inside)
    # col 24 covers columns 24..55: 21/32 = 0.656 stomach; threshold 0.7 turns it irrelevant
    lab = labels_from_mask(mask, [(0, 24)], 32, 0.7, "gastritis")
    assert lab.tolist() == [IRRELEVANT]
    lab = labels_from_mask(mask, [(0, 24)], 32, 21 / 32, "gastritis")  # exactly at the threshold
    assert lab.tolist() == [GASTRITIS]


def test_manual_labels_win_over_the_mask():
    mask = np.ones((100, 90), dtype=bool)
    pos = tile_positions(100, 90, 32, 8)
    labels = label_image(pos, 32, "gastritis", 0.5, mask, {(24, 48): IRRELEVANT, (68, 58): NON_GASTRITIS})
    assert labels[pos.index((24, 48))] == IRRELEVANT
    assert labels[pos.index((68, 58))] == NON_GASTRITIS
    assert (np.delete(labels, [pos.index((24, 48)), pos.index((68, 58))]) == GASTRITIS).all()


def _with_labels(root, text):
    (root / "patch_labels.csv").write_text(text)
    return load_manifest(root)


def _without_mask(data_root, image="images/A1_0.png"):
    """The manifest of ``data_root`` with ``image``'s mask entry emptied."""
    import csv

    from gastric_testdata import write_manifest

    with open(data_root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["image"] == image:
            row["mask"] = ""
    write_manifest(data_root, rows)


def _coverage_problems(m) -> list[str]:
    """The problems ``check_coverage`` refuses manifest ``m`` (with its patch labels) for."""
    sizes = validate_files(m, GEOM, progress=False)
    with pytest.raises(PatchLabelError) as info:
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    return info.value.problems


def test_patch_labels_file_parsed_by_number_or_name(data_root):
    m = _with_labels(
        data_root, "image,row,col,label\nimages/A1_0.png,0,0,2\n./images/A1_0.png,24,0,irrelevant\n"
    )
    labels = load_patch_labels(m)
    assert labels == {"images/A1_0.png": {(0, 0): 2, (24, 0): 0}}


def test_patch_labels_with_backslashes_name_the_manifests_images(data_root):
    """patch_labels.csv exported on Windows (``images\\A1_0.png``) matches the manifest's images, as a
    manifest with backslashes does (``manifest.manifest_path``): it was "not in manifest.csv"."""
    m = _with_labels(data_root, "image,row,col,label\nimages\\A1_0.png,0,0,2\n")
    assert load_patch_labels(m) == {"images/A1_0.png": {(0, 0): 2}}


def test_patch_labels_separated_by_semicolons_are_named_as_such(data_root):
    (data_root / "patch_labels.csv").write_text("image;row;col;label\nimages/A1_0.png;0;0;2\n")
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(load_manifest(data_root))
    msg = str(info.value)
    assert msg.startswith(f"{data_root / 'patch_labels.csv'}: the header is separated by semicolons (';'), ")
    assert "save it as comma-separated CSV UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'" in msg


def test_bad_patch_label_rows_are_listed(data_root):
    m = _with_labels(
        data_root,
        "image,row,col,label\n"
        "images/unknown.png,0,0,1\n"  # line 2
        "images/A1_0.png,x,0,1\n"  # line 3
        "images/A1_0.png,0,0,ulcer\n"  # line 4
        "images/A1_0.png,0,24,1\n"
        "images/A1_0.png,0,24,2\n",  # line 6: duplicate
    )
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(m)
    msg = str(info.value)
    assert len(info.value.problems) == 4
    assert "line 2: image 'images/unknown.png' is not in manifest.csv" in msg
    assert "line 3: row/col 'x','0' must be integer" in msg
    assert "line 4: label 'ulcer' must be 0/1/2" in msg
    assert "line 6: patch (0, 24) of image 'images/A1_0.png' is labelled twice" in msg


def test_off_grid_labels_and_images_without_any_label_are_errors(data_root):
    _without_mask(data_root)  # images/A1_0.png now has no mask ...
    m = _with_labels(data_root, "image,row,col,label\nimages/A1_0.png,0,0,1\nimages/A1_1.png,5,5,1\n")
    sizes = validate_files(m, GEOM, progress=False)
    with pytest.raises(PatchLabelError) as info:
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    msg = str(info.value)
    assert (
        "manifest.csv line 2 (image 'images/A1_0.png'): no mask and no manual label for 15 of its 16 patches"
        in msg
    )
    # with its line (a docs tester's finding: the other patch_labels.csv errors named theirs)
    assert "patch_labels.csv line 3: image 'images/A1_1.png': 1 row/col pair(s) such as (5, 5) are not" in msg
    m = _with_labels(
        data_root, "image,row,col,label\n" + "".join(f"images/A1_1.png,{i},1,1\n" for i in range(7))
    )
    with pytest.raises(
        PatchLabelError, match=r"csv lines 2, 3, 4, 5, 6 \.\.\.: image 'images/A1_1.png': 7 row"
    ):
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    # rows in another order than the grid's: still the file's first lines, in their order
    backwards = "".join(f"images/A1_1.png,{i},1,1\n" for i in range(6, -1, -1))
    m = _with_labels(data_root, "image,row,col,label\n" + backwards)
    with pytest.raises(PatchLabelError, match=r"csv lines 2, 3, 4, 5, 6 \.\.\.: image 'images/A1_1.png'"):
        check_coverage(m, sizes, GEOM, load_patch_labels(m))
    # ... and labelling all 16 of its patches by hand makes it valid
    full = "".join(f"images/A1_0.png,{r},{c},1\n" for r, c in tile_positions(100, 90, 32, 8))
    m = _with_labels(data_root, "image,row,col,label\n" + full)
    check_coverage(m, sizes, GEOM, load_patch_labels(m))


def test_patch_labels_not_in_utf8_are_refused_naming_the_file_and_line(data_root):
    (data_root / "patch_labels.csv").write_bytes(
        "image,row,col,label\nimages/A1_0.png,0,0,2\nimages/A1_0.png,24,0,irr\u00e9levant\n".encode("latin-1")
    )
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(load_manifest(data_root))
    msg = str(info.value)
    assert msg.startswith(f"{data_root / 'patch_labels.csv'} line 3: byte 0xe9 is not UTF-8")
    assert "save it as UTF-8" in msg


def test_label_names_are_read_in_any_case_and_each_name_gives_its_own_class(data_root):
    """The names of CLASS_NAMES, in any case and with spaces, are their classes 0/1/2 (the mutants: no
    ``.lower()``, and the names of classes 1 and 2 read as other classes)."""
    m = _with_labels(
        data_root,
        "image,row,col,label\n"
        "images/A1_0.png,0,0,Gastritis\n"
        "images/A1_0.png,0,24,NON-GASTRITIS\n"
        "images/A1_0.png,24,0, Irrelevant \n",
    )
    assert load_patch_labels(m) == {
        "images/A1_0.png": {(0, 0): GASTRITIS, (0, 24): NON_GASTRITIS, (24, 0): IRRELEVANT}
    }


def test_a_patch_labels_file_without_a_label_column_is_refused_naming_its_header(data_root):
    """A header without ``label`` is refused by name (the mutant that did not require it ended in a
    KeyError on the first row)."""
    m = _with_labels(data_root, "image,row,col\nimages/A1_0.png,0,0\n")
    with pytest.raises(PatchLabelError) as info:
        load_patch_labels(m)
    path = data_root / "patch_labels.csv"
    assert str(info.value) == f"{path}: header must be image,row,col,label; found ['image', 'row', 'col']"


def test_an_image_without_mask_or_manual_label_is_named_with_its_first_patch(data_root):
    """No patch_labels.csv at all: the unmasked image is still refused (a mutant checked only images with
    some manual labels), naming the first of its grid's patches (another named the last)."""
    _without_mask(data_root)
    assert _coverage_problems(load_manifest(data_root)) == [
        "manifest.csv line 2 (image 'images/A1_0.png'): no mask and no manual label for 16 of its 16 patches "
        "(first: row/col (0, 0)); add a mask column entry or rows to patch_labels.csv"
    ]


def test_off_grid_labels_name_the_rows_and_cols_of_the_grid_and_five_lines_without_an_ellipsis(data_root):
    """The images are 100 px high and 90 px wide; 32 px patches overlapping by 8 start every 24 px and
    the last is flush with the edge: rows 0, 24, 48, 68 (100 - 32), cols 0, 24, 48, 58 (90 - 32). Five
    off-grid lines are all named, with no '...' (mutants: rows and cols swapped; '...' from five on)."""
    rows = "".join(f"images/A1_1.png,{i},1,1\n" for i in range(5))
    m = _with_labels(data_root, "image,row,col,label\n" + rows)
    assert _coverage_problems(m) == [
        "patch_labels.csv lines 2, 3, 4, 5, 6: image 'images/A1_1.png': 5 row/col pair(s) such as (0, 1) are "
        "not patch corners (rows [0, 24, 48, 68], cols [0, 24, 48, 58])"
    ]


def test_patches_with_neither_mask_nor_manual_label_are_refused_and_counted():
    """Without a mask, every patch needs a manual label: two left out are refused and counted (mutants:
    unlabelled patches filled with 0, the check or its count changed); all labelled, the labels are the
    manual ones in the grid's order, int64 as documented, and so are the mask's."""
    pos = tile_positions(100, 90, 32, 8)
    manual = {rc: (i % 3) for i, rc in enumerate(pos)}
    partial = {rc: lab for rc, lab in manual.items() if rc not in (pos[0], pos[5])}
    with pytest.raises(PatchLabelError, match=r"^2 patch\(es\) have neither a mask nor a manual label$"):
        label_image(pos, 32, "gastritis", 0.5, None, partial)
    labels = label_image(pos, 32, "gastritis", 0.5, None, manual)
    assert labels.dtype == np.int64 and labels.tolist() == [i % 3 for i in range(len(pos))]
    masked = label_image(pos, 32, "gastritis", 0.5, np.ones((100, 90), dtype=bool))
    assert masked.dtype == np.int64 and masked.tolist() == [GASTRITIS] * len(pos)
